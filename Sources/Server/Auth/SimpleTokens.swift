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

    /// A new token for `user`.
    public func issue(for user: String) -> String {
        var rng = SystemRandomNumberGenerator()
        let random = String((0..<16).map { _ in Self.letters[Int(rng.next(upperBound: UInt(Self.letters.count)))] })
        return state.withLock { s in
            s.counter += 1
            let token = "\(random).\(s.counter)"
            s.tokens[token] = Entry(user: user, expiry: .now() + ttl)
            return token
        }
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
