#if canImport(Glibc)
import Glibc
#endif
import JWTKit
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// etcd's JWT tokens (`--auth-token jwt,...`, etcd 3.4 auth/jwt.go): a token is
/// `base64url(header).base64url(claims).base64url(signature)` with header
/// `{"alg":"<method>","typ":"JWT"}` and claims `{"exp":<unix seconds>,"revision":<auth
/// revision>,"username":"<user>"}` (keys sorted, as Go writes a map). Nothing is kept on the
/// server: every request's token is verified (signature with the configured key, `alg` equal to
/// the configured method, `exp`, `nbf`, `iat` against the wall clock) and names its user and the
/// auth revision it was issued at; the caller refuses a revision older than the current one
/// ("etcdserver: revision of auth store is old"), which is how deleting a user or changing
/// anything else in auth retires tokens that cannot be recalled.
public final class JWTTokens: AuthTokenProvider {
    public let method: JWTSignMethod
    public let ttl: Duration
    private let key: JWTKey
    private let encodedHeader: String
    /// Wall-clock time in nanoseconds since the Unix epoch (replaceable in tests).
    private let now: @Sendable () -> Int64

    public convenience init(options: JWTOptions) throws(AuthTokenError) {
        try self.init(options: options, now: { JWTTokens.wallClockNanoseconds() })
    }

    init(options: JWTOptions, now: @escaping @Sendable () -> Int64) throws(AuthTokenError) {
        method = options.method
        ttl = options.ttl
        key = try JWTKey(options)
        encodedHeader = Base64URL.encode(Array("{\"alg\":\"\(options.method.rawValue)\",\"typ\":\"JWT\"}".utf8))
        self.now = now
    }

    /// The claims etcd writes and reads.
    struct Claims: Codable {
        var exp: Int64
        var revision: UInt64
        var username: String
    }

    /// The claims as read back: numbers as JSON numbers of any form (Go decodes them as
    /// float64), the time claims optional.
    private struct ReadClaims: Decodable {
        var username: String
        var revision: Double
        var exp: Double?
        var nbf: Double?
        var iat: Double?
    }

    private struct Header: Decodable {
        var alg: String
    }

    public func assign(user: String, revision: UInt64) throws(AuthTokenError) -> String {
        guard key.canSign else { throw AuthTokenError(AuthTokenError.verifyOnly) }
        let (ttlSeconds, ttlAtto) = ttl.components
        let expiresNanos = now().addingReportingOverflow(ttlSeconds.multipliedReportingOverflow(by: 1_000_000_000).partialValue
                                                          &+ ttlAtto / 1_000_000_000).partialValue
        let claims = Claims(exp: Self.floorDiv(expiresNanos, 1_000_000_000), revision: revision, username: user)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let payload: Data
        do { payload = try encoder.encode(claims) } catch { throw AuthTokenError("auth: cannot encode the JWT claims: \(error)") }
        let signingInput = encodedHeader + "." + Base64URL.encode(Array(payload))
        do {
            let signature = try key.algorithm.sign(Array(signingInput.utf8))
            return signingInput + "." + Base64URL.encode(signature)
        } catch {
            throw AuthTokenError("auth: cannot sign the JWT: \(error)")
        }
    }

    public func info(_ token: String) -> AuthTokenInfo? {
        let parts = token.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3,
              let headerJSON = Base64URL.decode(parts[0]),
              let header = try? JSONDecoder().decode(Header.self, from: Data(headerJSON)),
              header.alg == method.rawValue,
              let signature = Base64URL.decode(parts[2]) else { return nil }
        let signingInput = Array(token.utf8.prefix(parts[0].count + 1 + parts[1].count))
        guard (try? key.algorithm.verify(signature, signs: signingInput)) == true,
              let claimsJSON = Base64URL.decode(parts[1]),
              let claims = try? JSONDecoder().decode(ReadClaims.self, from: Data(claimsJSON)) else { return nil }
        // Go's jwt (v3) MapClaims.Valid: expired when now > exp; not yet valid when now < iat or nbf.
        let seconds = Double(Self.floorDiv(now(), 1_000_000_000))
        if let exp = claims.exp, exp != 0, seconds > exp.rounded(.towardZero) { return nil }
        if let iat = claims.iat, iat != 0, seconds < iat.rounded(.towardZero) { return nil }
        if let nbf = claims.nbf, nbf != 0, seconds < nbf.rounded(.towardZero) { return nil }
        guard claims.revision >= 0, claims.revision < 18_446_744_073_709_551_616.0 else { return nil }
        return AuthTokenInfo(user: claims.username, revision: UInt64(claims.revision))
    }

    /// Signed tokens cannot be recalled: a changed user is refused through the token's revision.
    public func revokeAll(of user: String) {}

    public func revokeAll() {}

    static func wallClockNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) &* 1_000_000_000 &+ Int64(ts.tv_nsec)
    }

    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && a < 0) ? q - 1 : q
    }
}

/// Base64 with the URL alphabet and no padding (RFC 7515 §2), as JWTs use it.
enum Base64URL {
    static func encode(_ bytes: [UInt8]) -> String {
        var s = Data(bytes).base64EncodedString()
        s = s.replacing("+", with: "-").replacing("/", with: "_")
        while s.last == "=" { s.removeLast() }
        return s
    }

    /// nil for anything but URL-alphabet base64 (padding tolerated, as Go's DecodeSegment).
    static func decode(_ text: Substring.UTF8View) -> [UInt8]? {
        var s = ""
        s.reserveCapacity(text.count + 3)
        for c in text {
            switch c {
            case UInt8(ascii: "-"): s.append("+")
            case UInt8(ascii: "_"): s.append("/")
            case UInt8(ascii: "+"), UInt8(ascii: "/"): return nil
            default: s.unicodeScalars.append(Unicode.Scalar(c))
            }
        }
        while s.last == "=" { s.removeLast() }
        while s.utf8.count % 4 != 0 { s.append("=") }
        return Data(base64Encoded: s).map(Array.init)
    }
}
