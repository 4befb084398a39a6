/// The persisted form of `AuthState`: one record, rewritten whole on every auth change (auth
/// state is small). Format, all integers little-endian:
///
///     version u8 (=1) | enabled u8 | revision u64
///     userCount u32 | users sorted by name: name | hash | noPassword u8 | roleCount u32 | roles
///     roleCount u32 | roles sorted by name: name | permCount u32 | perms: kind u8 | key | rangeEnd
///
/// where strings and byte strings are u32 length + bytes (strings valid UTF-8; read by
/// `FieldReader`, which refuses a field longer than `FieldReader.maxFieldBytes`).
extension AuthState {
    public static let formatVersion: UInt8 = 1

    public func encoded() -> [UInt8] {
        var out: [UInt8] = [Self.formatVersion, enabled ? 1 : 0]
        out.appendLE(revision)
        out.appendLE(UInt32(users.count))
        for name in users.keys.sorted() {
            let u = users[name]!
            out.appendBytes(Array(u.name.utf8))
            out.appendBytes(Array(u.passwordHash.utf8))
            out.append(u.noPassword ? 1 : 0)
            out.appendLE(UInt32(u.roles.count))
            for r in u.roles { out.appendBytes(Array(r.utf8)) }
        }
        out.appendLE(UInt32(roles.count))
        for name in roles.keys.sorted() {
            let r = roles[name]!
            out.appendBytes(Array(r.name.utf8))
            out.appendLE(UInt32(r.permissions.count))
            for p in r.permissions {
                out.append(UInt8(p.kind.rawValue))
                out.appendBytes(p.key)
                out.appendBytes(p.rangeEnd)
            }
        }
        return out
    }

    /// Decodes `encoded()`'s output; nil when the bytes are not a valid record.
    public init?(decoding bytes: [UInt8]) {
        var r = FieldReader(bytes, .littleEndian)
        guard r.u8() == Self.formatVersion, let enabled = r.u8(), let revision = r.u64(), let userCount = r.u32() else { return nil }
        var s = AuthState()
        s.enabled = enabled == 1
        s.revision = revision
        for _ in 0..<userCount {
            guard let name = r.string(), let hash = r.string(), let noPassword = r.u8(), let roleCount = r.u32() else { return nil }
            var roles: [String] = []
            for _ in 0..<roleCount {
                guard let role = r.string() else { return nil }
                roles.append(role)
            }
            s.users[name] = User(name: name, passwordHash: hash, roles: roles, noPassword: noPassword == 1)
        }
        guard let roleCount = r.u32() else { return nil }
        for _ in 0..<roleCount {
            guard let name = r.string(), let permCount = r.u32() else { return nil }
            var perms: [Permission] = []
            for _ in 0..<permCount {
                guard let k = r.u8(), let kind = Permission.Kind(rawValue: Int(k)), let key = r.bytes(), let end = r.bytes() else { return nil }
                perms.append(Permission(kind: kind, key: key, rangeEnd: end))
            }
            s.roles[name] = Role(name: name, permissions: perms)
        }
        guard r.atEnd else { return nil }
        self = s
    }
}

private extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
    mutating func appendBytes(_ b: [UInt8]) {
        appendLE(UInt32(b.count))
        append(contentsOf: b)
    }
}
