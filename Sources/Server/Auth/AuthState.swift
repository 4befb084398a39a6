/// The persisted auth state: users, roles and their key-range permissions, the enabled flag,
/// and a revision bumped by every change. A value type: mutations return a new state, so the
/// applier can stage it and readers keep checking against the committed one.
///
/// Every mutation is deterministic (passwords arrive already hashed), so auth changes travel
/// through the same ordered log as KV writes.
public struct AuthState: Sendable, Hashable {
    public static let rootUser = "root"
    public static let rootRole = "root"

    public struct User: Sendable, Hashable {
        public var name: String
        /// A crypt(3) hash ("$2b$10$..."), empty for --no-password users.
        public var passwordHash: String
        public var roles: [String]   // sorted, unique
        public var noPassword: Bool
    }

    public struct Permission: Sendable, Hashable {
        public enum Kind: Int, Sendable { case read = 0, write = 1, readWrite = 2 }
        public var kind: Kind
        public var key: [UInt8]
        /// Empty: the single key `key`. [0]: every key >= `key`. Else [key, rangeEnd).
        public var rangeEnd: [UInt8]

        public init(kind: Kind, key: [UInt8], rangeEnd: [UInt8]) {
            self.kind = kind
            self.key = key
            self.rangeEnd = rangeEnd
        }

        func allows(_ wanted: Kind) -> Bool { kind == .readWrite || kind == wanted }
    }

    public struct Role: Sendable, Hashable {
        public var name: String
        public var permissions: [Permission]   // sorted by (key, rangeEnd)
    }

    public internal(set) var enabled = false
    /// etcd's auth revision, so that a JWT's `revision` claim and etcd_debugging_auth_revision
    /// read as etcd's for the same history: 1 for a new store, +1 per change except enabling
    /// auth (etcd's AuthEnable keeps the revision; AuthDisable bumps it).
    public internal(set) var revision: UInt64 = 1
    public internal(set) var users: [String: User] = [:]
    public internal(set) var roles: [String: Role] = [:]

    public init() {}

    /// A change to the auth state, as carried by a log entry.
    public enum Mutation: Sendable, Hashable {
        case enable, disable
        case userAdd(name: String, passwordHash: String, noPassword: Bool)
        case userDelete(name: String)
        case userChangePassword(name: String, passwordHash: String)
        case userGrantRole(user: String, role: String)
        case userRevokeRole(user: String, role: String)
        case roleAdd(name: String)
        case roleDelete(name: String)
        case roleGrantPermission(role: String, permission: Permission)
        case roleRevokePermission(role: String, key: [UInt8], rangeEnd: [UInt8])
    }

    /// The state after `mutation`, or etcd's error for it. A failing mutation changes nothing.
    public func applying(_ mutation: Mutation) throws(AuthError) -> AuthState {
        var s = self
        switch mutation {
        case .enable:
            if enabled { return self }   // etcd: enabling twice is not an error
            guard let root = users[Self.rootUser] else { throw .rootUserNotExist }
            guard root.roles.contains(Self.rootRole) else { throw .rootRoleNotExist }
            s.enabled = true
        case .disable:
            if !enabled { return self }
            s.enabled = false
        case .userAdd(let name, let hash, let noPassword):
            guard !name.isEmpty else { throw .userEmpty }
            guard users[name] == nil else { throw .userAlreadyExist }
            s.users[name] = User(name: name, passwordHash: hash, roles: [], noPassword: noPassword)
        case .userDelete(let name):
            if enabled && name == Self.rootUser { throw .invalidAuthMgmt }
            guard users[name] != nil else { throw .userNotFound }
            s.users[name] = nil
        case .userChangePassword(let name, let hash):
            guard var user = users[name] else { throw .userNotFound }
            user.passwordHash = hash
            s.users[name] = user
        case .userGrantRole(let userName, let role):
            guard var user = users[userName] else { throw .userNotFound }
            guard role == Self.rootRole || roles[role] != nil else { throw .roleNotFound }
            if user.roles.contains(role) { return self }   // etcd: granting twice is not an error
            user.roles.append(role)
            user.roles.sort()
            s.users[userName] = user
        case .userRevokeRole(let userName, let role):
            if enabled && userName == Self.rootUser && role == Self.rootRole { throw .invalidAuthMgmt }
            guard var user = users[userName] else { throw .userNotFound }
            guard let i = user.roles.firstIndex(of: role) else { throw .roleNotGranted }
            user.roles.remove(at: i)
            s.users[userName] = user
        case .roleAdd(let name):
            guard !name.isEmpty else { throw .roleEmpty }
            guard roles[name] == nil else { throw .roleAlreadyExist }
            s.roles[name] = Role(name: name, permissions: [])
        case .roleDelete(let name):
            if enabled && name == Self.rootRole { throw .invalidAuthMgmt }
            guard roles[name] != nil else { throw .roleNotFound }
            s.roles[name] = nil
            for (userName, var user) in s.users where user.roles.contains(name) {
                user.roles.removeAll { $0 == name }
                s.users[userName] = user
            }
        case .roleGrantPermission(let roleName, let permission):
            guard var role = roles[roleName] else { throw .roleNotFound }
            if let i = role.permissions.firstIndex(where: { $0.key == permission.key && $0.rangeEnd == permission.rangeEnd }) {
                role.permissions[i].kind = permission.kind
            } else {
                role.permissions.append(permission)
                role.permissions.sort { ($0.key, $0.rangeEnd) < ($1.key, $1.rangeEnd) }
            }
            s.roles[roleName] = role
        case .roleRevokePermission(let roleName, let key, let rangeEnd):
            guard var role = roles[roleName] else { throw .roleNotFound }
            guard let i = role.permissions.firstIndex(where: { $0.key == key && $0.rangeEnd == rangeEnd }) else {
                throw .permissionNotGranted
            }
            role.permissions.remove(at: i)
            s.roles[roleName] = role
        }
        if mutation != .enable { s.revision += 1 }
        return s
    }

    // MARK: checks

    /// Whether `user` has the root role.
    public func isRoot(_ user: String) -> Bool {
        users[user]?.roles.contains(Self.rootRole) ?? false
    }

    /// Whether `user` may perform `kind` on [key, rangeEnd) (rangeEnd empty: the key alone;
    /// [0]: every key >= key), as etcd checks: the root role may do anything; otherwise the
    /// union of the user's roles' permissions of that kind must cover the whole range.
    public func permits(_ user: String, _ kind: Permission.Kind, key: [UInt8], rangeEnd: [UInt8]) -> Bool {
        guard let u = users[user] else { return false }
        if u.roles.contains(Self.rootRole) { return true }
        let granted = u.roles.compactMap { roles[$0] }.flatMap(\.permissions).filter { $0.allows(kind) }
        if rangeEnd.isEmpty {
            return granted.contains { p in Self.interval(p).contains(key) }
        }
        // Cover [key, end) with the granted intervals (end nil = unbounded).
        let wantedEnd: [UInt8]? = rangeEnd == [0] ? nil : rangeEnd
        let intervals = granted.map(Self.interval).sorted { $0.start.lexicographicallyPrecedes($1.start) }
        var covered = key
        for iv in intervals {
            if covered.lexicographicallyPrecedes(iv.start) { break }   // a gap before this interval
            guard let ivEnd = iv.end else { return true }               // unbounded: covers the rest
            if covered.lexicographicallyPrecedes(ivEnd) { covered = ivEnd }
            if let wantedEnd, !covered.lexicographicallyPrecedes(wantedEnd) { return true }
        }
        if let wantedEnd { return !covered.lexicographicallyPrecedes(wantedEnd) }
        return false
    }

    private struct Interval {
        var start: [UInt8]
        var end: [UInt8]?   // nil: unbounded
        func contains(_ k: [UInt8]) -> Bool {
            !k.lexicographicallyPrecedes(start) && (end.map { k.lexicographicallyPrecedes($0) } ?? true)
        }
    }

    private static func interval(_ p: Permission) -> Interval {
        if p.rangeEnd.isEmpty { return Interval(start: p.key, end: p.key + [0]) }
        if p.rangeEnd == [0] { return Interval(start: p.key, end: nil) }
        return Interval(start: p.key, end: p.rangeEnd)
    }
}

private func < (a: ([UInt8], [UInt8]), b: ([UInt8], [UInt8])) -> Bool {
    if a.0 != b.0 { return a.0.lexicographicallyPrecedes(b.0) }
    return a.1.lexicographicallyPrecedes(b.1)
}
