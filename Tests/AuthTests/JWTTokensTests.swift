@testable import Auth
import Crypto
import Foundation
import Synchronization
import XCTest

/// JWT tokens as etcd 3.4 issues and checks them; the wire format is also checked against
/// etcd itself by Tests/compat/test_auth_jwt.py.
final class JWTTokensTests: XCTestCase {
    private final class FakeClock: Sendable {
        let nanoseconds = Atomic<Int64>(1_800_000_000 * 1_000_000_000)
        func advance(seconds: Int64) { nanoseconds.add(seconds * 1_000_000_000, ordering: .relaxed) }
    }
    private let clock = FakeClock()

    private func tokens(_ key: P256.Signing.PrivateKey, publicOnly: Bool = false, ttl: Duration = .seconds(300)) throws -> JWTTokens {
        let pem = Array(key.pemRepresentation.utf8), pub = Array(key.publicKey.pemRepresentation.utf8)
        let options = JWTOptions(method: .es256, publicKey: pub, privateKey: publicOnly ? nil : pem, ttl: ttl)
        return try JWTTokens(options: options, now: { [clock] in clock.nanoseconds.load(ordering: .relaxed) })
    }

    private func claims(_ token: String) throws -> [String: Any] {
        let parts = token.split(separator: ".")
        XCTAssertEqual(parts.count, 3)
        let json = try XCTUnwrap(Base64URL.decode(parts[1].utf8))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
    }

    func testIssuedTokenCarriesEtcdClaimsAndVerifies() throws {
        let t = try tokens(P256.Signing.PrivateKey())
        let token = try t.assign(user: "alice", revision: 7)
        let c = try claims(token)
        XCTAssertEqual(c["username"] as? String, "alice")
        XCTAssertEqual((c["revision"] as? NSNumber)?.uint64Value, 7)
        XCTAssertEqual((c["exp"] as? NSNumber)?.int64Value, 1_800_000_300)
        let header = try XCTUnwrap(Base64URL.decode(token.split(separator: ".")[0].utf8))
        XCTAssertEqual(String(decoding: header, as: UTF8.self), "{\"alg\":\"ES256\",\"typ\":\"JWT\"}")
        XCTAssertEqual(t.info(token), AuthTokenInfo(user: "alice", revision: 7))
    }

    func testExpiryForgeryAndGarbageAreRefused() throws {
        let t = try tokens(P256.Signing.PrivateKey(), ttl: .seconds(2))
        let token = try t.assign(user: "bob", revision: 3)
        clock.advance(seconds: 2)                           // now == exp: still valid (Go: now <= exp)
        XCTAssertNotNil(t.info(token))
        clock.advance(seconds: 1)
        XCTAssertNil(t.info(token))

        let other = try tokens(P256.Signing.PrivateKey())
        XCTAssertNil(t.info(try other.assign(user: "bob", revision: 3)))   // signed with another key
        let parts = token.split(separator: ".").map(String.init)
        let forgedClaims = Base64URL.encode(Array("{\"exp\":9999999999,\"revision\":3,\"username\":\"root\"}".utf8))
        XCTAssertNil(t.info(parts[0] + "." + forgedClaims + "." + parts[2]))  // claims changed
        let noneHeader = Base64URL.encode(Array("{\"alg\":\"none\",\"typ\":\"JWT\"}".utf8))
        XCTAssertNil(t.info(noneHeader + "." + parts[1] + "."))              // alg none
        for garbage in ["", ".", "..", "a.b.c", "not-a-token", parts[0] + "." + parts[1], token + ".x", "\u{0}.\u{ff}.é"] {
            XCTAssertNil(t.info(garbage), garbage)
        }
    }

    func testVerifyOnlyKeyRefusesToSign() throws {
        let key = P256.Signing.PrivateKey()
        let signer = try tokens(key), verifier = try tokens(key, publicOnly: true)
        let token = try signer.assign(user: "carol", revision: 1)
        XCTAssertEqual(verifier.info(token)?.user, "carol")
        XCTAssertThrowsError(try verifier.assign(user: "carol", revision: 1)) { error in
            XCTAssertEqual((error as? AuthTokenError)?.description, "auth: token signing attempted with verify-only key")
        }
    }

    func testSpecParsingFollowsEtcd() throws {
        XCTAssertEqual(try AuthTokenSpec(parsing: "jwt,sign-method=RS256,ttl=1m").options, ["sign-method": "RS256", "ttl": "1m"])
        XCTAssertThrowsError(try AuthTokenSpec(parsing: "jwt,sign-method"))
        XCTAssertThrowsError(try AuthTokenSpec(parsing: "jwt,ttl=1m,ttl=2m"))
        let noDuration: (String) -> Duration? = { _ in nil }
        XCTAssertTrue(try AuthTokenSpec(parsing: "simple").makeProvider(simpleTTLSeconds: 300, parseDuration: noDuration) is SimpleTokens)
        for bad in ["bogus", "", "jwt,sign-method=XX256", "jwt,sign-method=RS256", "jwt,sign-method=ES256,priv-key=/nonexistent/key.pem"] {
            XCTAssertThrowsError(try AuthTokenSpec(parsing: bad).makeProvider(simpleTTLSeconds: 300, parseDuration: noDuration), bad) { e in
                XCTAssertTrue("\(e)".hasPrefix("auth: "), "\(e)")
            }
        }
    }
}
