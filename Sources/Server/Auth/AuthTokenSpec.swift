/// The `--auth-token` flag as etcd 3.4 reads it: `simple` (the default) or
/// `jwt,sign-method=RS256,pub-key=FILE,priv-key=FILE[,ttl=5m]`: a token type, then
/// comma-separated `name=value` options (a pair without exactly one `=` or a repeated name is
/// "auth: invalid auth options"; unknown names are ignored, as etcd warns and goes on).
public struct AuthTokenSpec: Sendable, Equatable {
    public var type: String
    public var options: [String: String]

    public init(parsing spec: String) throws(AuthTokenError) {
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        type = parts.first ?? ""
        options = [:]
        for part in parts.dropFirst() {
            let pair = part.split(separator: "=", omittingEmptySubsequences: false)
            guard pair.count == 2 else {
                throw AuthTokenError("\(AuthTokenError.invalidOptions) (invalid token specific option: \(spec))")
            }
            let name = String(pair[0])
            guard options[name] == nil else {
                throw AuthTokenError("\(AuthTokenError.invalidOptions) (duplicated parameter \(name): \(spec))")
            }
            options[name] = String(pair[1])
        }
    }

    /// The provider this spec names. `simpleTTLSeconds` is --auth-token-ttl (simple tokens
    /// only); `parseDuration` reads a JWT `ttl` in Go's duration syntax (nil: invalid).
    public func makeProvider(simpleTTLSeconds: Int,
                             parseDuration: (String) -> Duration?) throws(AuthTokenError) -> any AuthTokenProvider {
        switch type {
        case "simple":
            return SimpleTokens(ttlSeconds: simpleTTLSeconds)
        case "jwt":
            return try JWTTokens(options: JWTOptions(options, parseDuration: parseDuration))
        default:
            // etcd's "" is a provider that issues no usable token; rusd refuses it as well as
            // any other unknown type.
            throw AuthTokenError("\(AuthTokenError.invalidOptions) (unknown token type: \"\(type)\"; valid: simple, jwt)")
        }
    }
}
