import Crypto
import Dispatch
import JWTKit
import Synchronization

/// The signing key of `--auth-token jwt,...`, loaded as etcd 3.4 loads it (auth/options.go):
/// RS*/PS* take PEM RSA keys (PKCS#1 or PKCS#8; jwt-kit refuses keys under 2048 bits),
/// ES256/384/512 PEM EC keys on P-256/P-384/P-521, HS* the `priv-key` file's bytes as the
/// secret. With a private key the server signs and verifies (a public key given too must
/// match it); with only a public key it verifies tokens signed elsewhere and refuses to issue
/// any (etcd's verify-only mode).
struct JWTKey: Sendable {
    /// jwt-kit's signer/verifier for the method (synchronous `sign` / `verify`).
    let algorithm: any JWTAlgorithm
    let canSign: Bool

    init(_ options: JWTOptions) throws(AuthTokenError) {
        let method = options.method
        let pub = options.publicKey.flatMap { $0.isEmpty ? nil : $0 }
        let priv = options.privateKey.flatMap { $0.isEmpty ? nil : $0 }
        let keys = JWTKeyCollection()
        let add: @Sendable (JWTKeyCollection) async -> Void
        do {
            switch method {
            case .rs256, .rs384, .rs512, .ps256, .ps384, .ps512:
                let digest = Self.digest(method)
                let pss = [.ps256, .ps384, .ps512].contains(method)
                let key: any RSAKey
                if let priv {
                    let p = try Insecure.RSA.PrivateKey(pem: priv)
                    if let pub, try Insecure.RSA.PublicKey(pem: pub) != p.publicKey { throw AuthTokenError(AuthTokenError.keyMismatch) }
                    key = p
                } else if let pub {
                    key = try Insecure.RSA.PublicKey(pem: pub)
                } else {
                    throw AuthTokenError(AuthTokenError.missingKey)
                }
                add = { keys in
                    if pss {
                        await keys.add(pss: key, digestAlgorithm: digest)
                    } else {
                        await keys.add(rsa: key, digestAlgorithm: digest)
                    }
                }
            case .es256:
                add = try Self.ecdsa(ES256PrivateKey.self, ES256PublicKey.self, priv: priv, pub: pub)
            case .es384:
                add = try Self.ecdsa(ES384PrivateKey.self, ES384PublicKey.self, priv: priv, pub: pub)
            case .es512:
                add = try Self.ecdsa(ES512PrivateKey.self, ES512PublicKey.self, priv: priv, pub: pub)
            case .hs256, .hs384, .hs512:
                guard let priv else { throw AuthTokenError(AuthTokenError.missingKey) }
                let digest = Self.digest(method)
                add = { keys in await keys.add(hmac: HMACKey(from: priv), digestAlgorithm: digest) }
            }
        } catch let e as AuthTokenError {
            throw e
        } catch {
            throw AuthTokenError("auth: cannot load the \(method.rawValue) key from \(priv != nil ? "priv-key" : "pub-key"): \(error)")
        }
        canSign = priv != nil
        // jwt-kit hands its algorithms out through an actor; this runs once, at start, on a
        // thread outside Swift's concurrency pool.
        let result = Outcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            await add(keys)
            let r: Result<any JWTAlgorithm, any Error>
            do { r = .success(try await keys.getKey()) } catch { r = .failure(error) }
            result.value.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        switch result.value.withLock({ $0 }) {
        case .success(let a): algorithm = a
        case .failure(let e): throw AuthTokenError("auth: cannot load the \(method.rawValue) key: \(e)")
        case nil: throw AuthTokenError("auth: cannot load the \(method.rawValue) key")
        }
    }

    private final class Outcome: Sendable {
        let value = Mutex<Result<any JWTAlgorithm, any Error>?>(nil)
    }

    private static func digest(_ method: JWTSignMethod) -> DigestAlgorithm {
        switch method {
        case .rs256, .ps256, .es256, .hs256: return .sha256
        case .rs384, .ps384, .es384, .hs384: return .sha384
        case .rs512, .ps512, .es512, .hs512: return .sha512
        }
    }

    private static func ecdsa<Curve: ECDSACurveType>(
        _: ECDSA.PrivateKey<Curve>.Type, _: ECDSA.PublicKey<Curve>.Type, priv: [UInt8]?, pub: [UInt8]?
    ) throws -> @Sendable (JWTKeyCollection) async -> Void {
        if let priv {
            let p = try ECDSA.PrivateKey<Curve>(pem: priv)
            if let pub, try ECDSA.PublicKey<Curve>(pem: pub) != p.publicKey { throw AuthTokenError(AuthTokenError.keyMismatch) }
            return { keys in await keys.add(ecdsa: p) }
        }
        guard let pub else { throw AuthTokenError(AuthTokenError.missingKey) }
        let key = try ECDSA.PublicKey<Curve>(pem: pub)
        return { keys in await keys.add(ecdsa: key) }
    }
}
