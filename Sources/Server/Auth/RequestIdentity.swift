/// Who a write acts as, carried by its log entry (etcd's `RequestHeader{username,
/// auth_revision}`): the member that received the request checked it against its auth state,
/// and every member checks it again when applying the entry, against the auth state at that
/// point of the log (etcd's authApplierV3).
///
/// `authRevision` is the auth revision the caller was checked at: the receiving member's auth
/// revision for a simple token or a certificate, the token's own for a JWT, and 0 when auth was
/// disabled on arrival for a caller without a token (no identity: if auth is enabled by the
/// time the entry is applied, the write is refused with "etcdserver: user name is empty", as in
/// etcd). `user` is empty for an anonymous caller. `checkedOnArrival`: the receiving member
/// checked the permissions against an enabled auth state at `authRevision` (false when auth was
/// disabled there, e.g. a JWT sent to a member that has not applied `auth enable` yet): only
/// then may applying skip the checks when the auth revision is still the same.
public struct RequestIdentity: Sendable, Hashable {
    public var user: String
    public var authRevision: UInt64
    public var checkedOnArrival: Bool

    public init(user: String, authRevision: UInt64, checkedOnArrival: Bool) {
        self.user = user
        self.authRevision = authRevision
        self.checkedOnArrival = checkedOnArrival
    }

    /// Longest user name a decoded identity may hold.
    public static let maxUserBytes = 64 << 10

    /// Wire form, big-endian: `checkedOnArrival u8 (0/1) | authRevision u64 | user (u32 length +
    /// UTF-8)`.
    public func wireBytes() -> [UInt8] {
        var w = FieldWriter()
        w.u8(checkedOnArrival ? 1 : 0)
        w.u64(authRevision)
        w.string(user)
        return w.out
    }

    /// Decodes the identity at the start of `bytes` (`wireBytes()`'s output followed by anything):
    /// the identity and where what follows it starts, or nil when the bytes do not begin with a
    /// valid identity (too short, a flag other than 0/1, a length past the end or above
    /// `maxUserBytes`, invalid UTF-8).
    public static func decode(prefixOf bytes: [UInt8]) -> (identity: RequestIdentity, end: Int)? {
        var r = FieldReader(bytes, .bigEndian)
        guard let checked = r.flag(), let revision = r.u64(), let user = r.string(), user.utf8.count <= maxUserBytes
        else { return nil }
        return (RequestIdentity(user: user, authRevision: revision, checkedOnArrival: checked), r.offset)
    }
}
