/// A simple token issued through the cluster log (etcd's `InternalAuthenticateRequest`): the
/// member that received Authenticate checked the password at auth revision `checkedRevision`
/// and chose a random `prefix`; every member, applying the entry at log index N, registers the
/// token `"<prefix>.<N>"` for `user` (`SimpleTokens.register`), so the token is valid on every
/// member. No password travels.
///
/// Applying refuses the grant when the auth state changed since the password was checked
/// (`checkedRevision` is no longer the auth revision): the receiving member checks the password
/// again against the new state, as etcd's Authenticate loops.
public struct SimpleTokenGrant: Sendable, Hashable {
    public var user: String
    public var prefix: String
    public var checkedRevision: UInt64

    public init(user: String, prefix: String, checkedRevision: UInt64) {
        self.user = user
        self.prefix = prefix
        self.checkedRevision = checkedRevision
    }

    public static let wireVersion: UInt8 = 1

    /// The token this grant stands for once applied at log `index`.
    public func token(index: UInt64) -> String { "\(prefix).\(index)" }

    /// Wire form, big-endian: `version u8 (= 1) | checkedRevision u64 | user | prefix` (strings as
    /// u32 length + UTF-8).
    public func wireBytes() -> [UInt8] {
        var w = FieldWriter()
        w.u8(Self.wireVersion)
        w.u64(checkedRevision)
        w.string(user)
        w.string(prefix)
        return w.out
    }

    /// Decodes `wireBytes()`'s output; nil unless `bytes` are exactly one grant whose prefix is
    /// 1-64 ASCII letters (what `SimpleTokens.newPrefix` makes) and whose user name is at most
    /// `RequestIdentity.maxUserBytes`. Never traps.
    public init?(wireBytes bytes: [UInt8]) {
        var r = FieldReader(bytes, .bigEndian)
        guard r.u8() == Self.wireVersion, let revision = r.u64(), let user = r.string(), let prefix = r.string(),
              r.atEnd, user.utf8.count <= RequestIdentity.maxUserBytes,
              (1 ... 64).contains(prefix.utf8.count),
              prefix.utf8.allSatisfy({ (0x41 ... 0x5a).contains($0) || (0x61 ... 0x7a).contains($0) })
        else { return nil }
        self.init(user: user, prefix: prefix, checkedRevision: revision)
    }
}
