/// Who a token names, as its provider vouches for it.
public struct AuthTokenInfo: Sendable, Equatable {
    /// The user the token was issued to.
    public var user: String
    /// The auth revision the token was issued at, when the token carries one (a JWT's
    /// `revision` claim). nil: the token stands for the current auth state (a simple token,
    /// which the server revokes when its user changes).
    public var revision: UInt64?

    public init(user: String, revision: UInt64?) {
        self.user = user
        self.revision = revision
    }
}

/// How `--auth-token` tokens are issued and checked: etcd's simple tokens (`SimpleTokens`) or
/// signed JWTs (`JWTTokens`). Every request's token goes through `info`, so it must be cheap
/// and safe for any bytes a client sends.
public protocol AuthTokenProvider: Sendable {
    /// A new token for `user`, who authenticated when the auth state was at `revision`.
    /// Throws when this provider cannot issue tokens (a JWT provider holding only a public key).
    func assign(user: String, revision: UInt64) throws(AuthTokenError) -> String

    /// The user and revision of a valid token; nil when the token is unknown, expired, forged
    /// or malformed (the caller answers etcd's "invalid auth token").
    func info(_ token: String) -> AuthTokenInfo?

    /// Forgets every token of `user` (deleted user, changed password), where the provider
    /// keeps tokens; signed tokens cannot be recalled and are refused by their revision instead.
    func revokeAll(of user: String)

    /// Forgets every token (auth disabled), where the provider keeps tokens.
    func revokeAll()
}

/// A token provider that cannot be built (bad `--auth-token`) or cannot issue a token, with
/// etcd's wording ("auth: invalid auth options", "auth: missing key data", ...).
public struct AuthTokenError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }

    static let invalidOptions = "auth: invalid auth options"
    static let invalidMethod = "auth: invalid auth signature method"
    static let missingKey = "auth: missing key data"
    static let keyMismatch = "auth: public and private keys don't match"
    static let verifyOnly = "auth: token signing attempted with verify-only key"
}
