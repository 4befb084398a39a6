#if canImport(Glibc)
import Glibc
#endif

/// The signature algorithms etcd 3.4 accepts for `--auth-token jwt,sign-method=...`.
public enum JWTSignMethod: String, Sendable, CaseIterable {
    case rs256 = "RS256", rs384 = "RS384", rs512 = "RS512"
    case ps256 = "PS256", ps384 = "PS384", ps512 = "PS512"
    case es256 = "ES256", es384 = "ES384", es512 = "ES512"
    case hs256 = "HS256", hs384 = "HS384", hs512 = "HS512"
}

/// JWT options as etcd 3.4 reads them (auth/options.go): `sign-method` (required), `pub-key`
/// and `priv-key` (PEM files; HMAC: `priv-key` is the secret itself), `ttl` (Go duration,
/// default 5m). Key files are read here; a missing or unreadable file, an unknown method or a
/// bad ttl is "auth: invalid auth options" with the cause in parentheses, as etcd logs it.
public struct JWTOptions: Sendable {
    public var method: JWTSignMethod
    public var publicKey: [UInt8]?
    public var privateKey: [UInt8]?
    public var ttl: Duration

    public static let defaultTTL: Duration = .seconds(300)

    public init(method: JWTSignMethod, publicKey: [UInt8]?, privateKey: [UInt8]?, ttl: Duration = defaultTTL) {
        self.method = method
        self.publicKey = publicKey
        self.privateKey = privateKey
        self.ttl = ttl
    }

    public init(_ options: [String: String], parseDuration: (String) -> Duration?) throws(AuthTokenError) {
        func invalid(_ cause: String) -> AuthTokenError {
            AuthTokenError("\(AuthTokenError.invalidOptions) (\(cause))")
        }
        ttl = Self.defaultTTL
        if let text = options["ttl"], !text.isEmpty {
            guard let d = parseDuration(text) else { throw invalid("time: invalid duration \(text)") }
            ttl = d
        }
        publicKey = nil
        privateKey = nil
        if let path = options["pub-key"], !path.isEmpty {
            do { publicKey = try Self.readFile(path) } catch { throw invalid(error.description) }
        }
        if let path = options["priv-key"], !path.isEmpty {
            do { privateKey = try Self.readFile(path) } catch { throw invalid(error.description) }
        }
        let name = options["sign-method"] ?? ""
        guard let method = JWTSignMethod(rawValue: name) else {
            throw invalid("\(AuthTokenError.invalidMethod): \"\(name)\"; valid: "
                          + JWTSignMethod.allCases.map(\.rawValue).joined(separator: ", "))
        }
        self.method = method
    }

    /// The whole file at `path`, or an error worded like Go's ("open PATH: No such file or directory").
    static func readFile(_ path: String) throws(AuthTokenError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw AuthTokenError("open \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16_384)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw AuthTokenError("read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { return bytes }
            guard bytes.count + n <= 1 << 20 else { throw AuthTokenError("read \(path): larger than 1 MiB, not a key file") }
            bytes += chunk[0..<n]
        }
    }
}
