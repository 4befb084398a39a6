/// The wire form of an `AuthState.Mutation`, as a cluster log entry carries it (docs/cluster.md).
/// All integers big-endian:
///
///     version u8 (= 1) | operation u8 | fields
///
/// where each field is a string or byte string (u32 length + bytes; strings valid UTF-8), a
/// flag (u8, 0 or 1) or a permission kind (u8, 0 read / 1 write / 2 readwrite):
///
///     1 enable                      2 disable
///     3 userAdd name hash noPassword    4 userDelete name
///     5 userChangePassword name hash    6 userGrantRole user role
///     7 userRevokeRole user role        8 roleAdd name
///     9 roleDelete name                 10 roleGrantPermission role kind key rangeEnd
///     11 roleRevokePermission role key rangeEnd
///
/// Passwords never travel: a user's password is hashed once by the member that received the
/// request, and every member applies the hash. Decoding hostile bytes never traps: it returns
/// nil for a wrong version, an unknown operation, a length past the end, invalid UTF-8, a
/// field longer than `maxFieldBytes`, or bytes left over.
extension AuthState.Mutation {
    public static let wireVersion: UInt8 = 1
    /// Longest string or key a decoded mutation may hold (etcd's request limit is 1.5 MiB).
    public static let maxFieldBytes = FieldReader.maxFieldBytes

    public func wireBytes() -> [UInt8] {
        var w = FieldWriter()
        w.u8(Self.wireVersion)
        switch self {
        case .enable: w.u8(1)
        case .disable: w.u8(2)
        case .userAdd(let name, let hash, let noPassword):
            w.u8(3); w.string(name); w.string(hash); w.u8(noPassword ? 1 : 0)
        case .userDelete(let name): w.u8(4); w.string(name)
        case .userChangePassword(let name, let hash): w.u8(5); w.string(name); w.string(hash)
        case .userGrantRole(let user, let role): w.u8(6); w.string(user); w.string(role)
        case .userRevokeRole(let user, let role): w.u8(7); w.string(user); w.string(role)
        case .roleAdd(let name): w.u8(8); w.string(name)
        case .roleDelete(let name): w.u8(9); w.string(name)
        case .roleGrantPermission(let role, let p):
            w.u8(10); w.string(role); w.u8(UInt8(truncatingIfNeeded: p.kind.rawValue)); w.bytes(p.key); w.bytes(p.rangeEnd)
        case .roleRevokePermission(let role, let key, let rangeEnd):
            w.u8(11); w.string(role); w.bytes(key); w.bytes(rangeEnd)
        }
        return w.out
    }

    /// Decodes `wireBytes()`'s output; nil when `bytes` are not exactly one valid mutation.
    public init?(wireBytes bytes: [UInt8]) {
        var r = FieldReader(bytes, .bigEndian)
        guard r.u8() == Self.wireVersion, let op = r.u8() else { return nil }
        let m: AuthState.Mutation?
        switch op {
        case 1: m = .enable
        case 2: m = .disable
        case 3:
            if let name = r.string(), let hash = r.string(), let flag = r.flag() {
                m = .userAdd(name: name, passwordHash: hash, noPassword: flag)
            } else { m = nil }
        case 4: m = r.string().map { AuthState.Mutation.userDelete(name: $0) }
        case 5:
            if let name = r.string(), let hash = r.string() { m = .userChangePassword(name: name, passwordHash: hash) } else { m = nil }
        case 6:
            if let user = r.string(), let role = r.string() { m = .userGrantRole(user: user, role: role) } else { m = nil }
        case 7:
            if let user = r.string(), let role = r.string() { m = .userRevokeRole(user: user, role: role) } else { m = nil }
        case 8: m = r.string().map { AuthState.Mutation.roleAdd(name: $0) }
        case 9: m = r.string().map { AuthState.Mutation.roleDelete(name: $0) }
        case 10:
            if let role = r.string(), let k = r.u8(), let kind = AuthState.Permission.Kind(rawValue: Int(k)),
               let key = r.bytes(), let end = r.bytes() {
                m = .roleGrantPermission(role: role, permission: .init(kind: kind, key: key, rangeEnd: end))
            } else { m = nil }
        case 11:
            if let role = r.string(), let key = r.bytes(), let end = r.bytes() {
                m = .roleRevokePermission(role: role, key: key, rangeEnd: end)
            } else { m = nil }
        default: m = nil
        }
        guard let m, r.atEnd else { return nil }
        self = m
    }
}
