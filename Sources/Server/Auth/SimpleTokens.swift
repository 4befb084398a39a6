import Dispatch
import Synchronization

/// etcd's "simple" auth tokens: 16 random letters + "." + an index, valid for a TTL (etcd's
/// --auth-token-ttl, default 300 s) that each use extends. Held in memory only, as etcd's: a
/// restart (or disabling auth, or deleting the user) invalidates them.
public final class SimpleTokens: AuthTokenProvider {
    private struct Entry {
        var user: String
        var expiry: DispatchTime
    }

    private let ttl: DispatchTimeInterval
    private let state = Mutex<(tokens: [String: Entry], counter: UInt64)>(([:], 0))
    private static let letters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")

    public init(ttlSeconds: Int = 300) {
        ttl = .seconds(ttlSeconds)
    }

    /// 16 random letters: the part of a token before its ".".
    public static func newPrefix() -> String {
        var rng = SystemRandomNumberGenerator()
        return String((0..<16).map { _ in letters[Int(rng.next(upperBound: UInt(letters.count)))] })
    }

    /// A new token for `user` (single member: "<prefix>.<counter>").
    public func issue(for user: String) -> String {
        let random = Self.newPrefix()
        return state.withLock { s in
            s.counter += 1
            let token = "\(random).\(s.counter)"
            s.tokens[token] = Entry(user: user, expiry: .now() + ttl)
            return token
        }
    }

    /// Makes `token` valid for `user` on this member for the TTL from now (cluster mode: every
    /// member registers the token of an applied `SimpleTokenGrant`; each member's TTL starts
    /// when it applies the grant and is extended by the uses made on it, as in etcd).
    public func register(_ token: String, user: String) {
        state.withLock { $0.tokens[token] = Entry(user: user, expiry: .now() + ttl) }
    }

    /// The log index a cluster-mode token names ("<prefix>.<index>": 1-20 ASCII digits after
    /// the last "."), or nil when `token` has no such suffix.
    public static func logIndex(of token: String) -> UInt64? {
        let utf8 = token.utf8
        guard let dot = utf8.lastIndex(of: UInt8(ascii: ".")) else { return nil }
        let digits = utf8[utf8.index(after: dot)...]
        guard (1 ... 20).contains(digits.count), digits.allSatisfy({ (0x30 ... 0x39).contains($0) }) else { return nil }
        var value: UInt64 = 0
        for d in digits {
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(d - 0x30))
            if o1 || o2 { return nil }
            value = sum
        }
        return value
    }

    /// The user of a live token (extending its life), or nil when unknown or expired.
    public func user(for token: String) -> String? {
        let now = DispatchTime.now()
        return state.withLock { s in
            guard var e = s.tokens[token] else { return nil }
            guard e.expiry > now else {
                s.tokens[token] = nil
                return nil
            }
            e.expiry = now + ttl
            s.tokens[token] = e
            return e.user
        }
    }

    /// Forgets every token of `user` (deleted user, changed password).
    public func revokeAll(of user: String) {
        state.withLock { s in s.tokens = s.tokens.filter { $0.value.user != user } }
    }

    /// Forgets every token (auth disabled).
    public func revokeAll() {
        state.withLock { $0.tokens.removeAll() }
    }

    public func assign(user: String, revision: UInt64) throws(AuthTokenError) -> String {
        issue(for: user)
    }

    /// A simple token stands for the current auth state (revision nil): the server revokes it
    /// when its user changes.
    public func info(_ token: String) -> AuthTokenInfo? {
        user(for: token).map { AuthTokenInfo(user: $0, revision: nil) }
    }
}
