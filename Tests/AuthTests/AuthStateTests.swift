import Auth
import XCTest

final class AuthStateTests: XCTestCase {
    private func state(_ mutations: [AuthState.Mutation]) throws -> AuthState {
        var s = AuthState()
        for m in mutations { s = try s.applying(m) }
        return s
    }

    private func perm(_ kind: AuthState.Permission.Kind, _ key: String, _ end: String) -> AuthState.Mutation {
        .roleGrantPermission(role: "r", permission: .init(kind: kind, key: Array(key.utf8), rangeEnd: Array(end.utf8)))
    }

    func testEnableNeedsRootUserWithRootRole() throws {
        XCTAssertThrowsError(try state([.enable])) { XCTAssertEqual($0 as? AuthError, .rootUserNotExist) }
        XCTAssertThrowsError(try state([.userAdd(name: "root", passwordHash: "", noPassword: true), .enable])) {
            XCTAssertEqual($0 as? AuthError, .rootRoleNotExist)
        }
        let s = try state([.userAdd(name: "root", passwordHash: "", noPassword: true), .roleAdd(name: "root"),
                           .userGrantRole(user: "root", role: "root"), .enable])
        XCTAssertTrue(s.enabled)
        XCTAssertEqual(s.revision, 4)   // etcd's: 1 for a new store, +1 per change but enable
        XCTAssertThrowsError(try s.applying(.userDelete(name: "root"))) { XCTAssertEqual($0 as? AuthError, .invalidAuthMgmt) }
        XCTAssertThrowsError(try s.applying(.roleDelete(name: "root"))) { XCTAssertEqual($0 as? AuthError, .invalidAuthMgmt) }
    }

    func testRangePermissionsMustCoverTheWholeRange() throws {
        let s = try state([.userAdd(name: "u", passwordHash: "", noPassword: true), .roleAdd(name: "r"),
                           perm(.read, "a", "c"), perm(.readWrite, "c", "e"), perm(.write, "k", ""),
                           .userGrantRole(user: "u", role: "r")])
        XCTAssertTrue(s.permits("u", .read, key: Array("b".utf8), rangeEnd: []))
        XCTAssertTrue(s.permits("u", .read, key: Array("a".utf8), rangeEnd: Array("e".utf8)), "two adjacent intervals cover [a, e)")
        XCTAssertFalse(s.permits("u", .read, key: Array("a".utf8), rangeEnd: Array("f".utf8)))
        XCTAssertFalse(s.permits("u", .write, key: Array("b".utf8), rangeEnd: []), "read-only interval")
        XCTAssertTrue(s.permits("u", .write, key: Array("k".utf8), rangeEnd: []))
        XCTAssertFalse(s.permits("u", .write, key: Array("k".utf8), rangeEnd: Array("l".utf8)), "single key does not cover [k, l)")
        XCTAssertFalse(s.permits("u", .read, key: Array("a".utf8), rangeEnd: [0]), "no unbounded permission")
        XCTAssertFalse(s.permits("nobody", .read, key: Array("b".utf8), rangeEnd: []))
    }

    /// A from-key range ([key, end of keyspace), range end [0]) is covered only by permissions
    /// reaching the end of the keyspace (the check a from-key watch gets).
    func testFromKeyRangeNeedsAnUnboundedPermission() throws {
        let s = try state([.userAdd(name: "u", passwordHash: "", noPassword: true), .roleAdd(name: "r"),
                           perm(.read, "/ro/", "/ro0"), perm(.read, "m", "\u{0}"),
                           .userGrantRole(user: "u", role: "r")])
        XCTAssertTrue(s.permits("u", .read, key: Array("/ro/a".utf8), rangeEnd: []))
        XCTAssertFalse(s.permits("u", .read, key: Array("/ro/".utf8), rangeEnd: [0]), "[/ro/, /ro0) does not reach the end")
        XCTAssertTrue(s.permits("u", .read, key: Array("m".utf8), rangeEnd: [0]))
        XCTAssertTrue(s.permits("u", .read, key: Array("zz".utf8), rangeEnd: [0]))
        XCTAssertFalse(s.permits("u", .read, key: Array("l".utf8), rangeEnd: [0]), "a gap before m")
        XCTAssertFalse(s.permits("u", .read, key: [0], rangeEnd: [0]), "the whole keyspace")
    }

    func testSimpleTokensRevocation() {
        let tokens = SimpleTokens(ttlSeconds: 300)
        let a1 = tokens.issue(for: "alice"), a2 = tokens.issue(for: "alice"), b = tokens.issue(for: "bob")
        XCTAssertNotEqual(a1, a2)
        XCTAssertEqual(tokens.user(for: a1), "alice")
        XCTAssertNil(tokens.user(for: "not-a-token"))
        tokens.revokeAll(of: "alice")
        XCTAssertNil(tokens.user(for: a1))
        XCTAssertNil(tokens.user(for: a2))
        XCTAssertEqual(tokens.user(for: b), "bob")
        tokens.revokeAll()
        XCTAssertNil(tokens.user(for: b))
    }

    func testPersistedFormRoundTrips() throws {
        let s = try state([.userAdd(name: "u", passwordHash: "$2b$x", noPassword: false), .roleAdd(name: "r"),
                           perm(.readWrite, "a", "\u{0}"), .userGrantRole(user: "u", role: "r")])
        XCTAssertEqual(AuthState(decoding: s.encoded()), s)
        var truncated = s.encoded()
        truncated.removeLast()
        XCTAssertNil(AuthState(decoding: truncated))
    }

    func testBcryptHashesVerify() {
        let hasher = PasswordHasher(cost: 4)
        guard let h = hasher.hash("secret") else { return XCTFail("libxcrypt refused to hash") }
        XCTAssertTrue(h.hasPrefix("$2b$04$"), h)
        XCTAssertTrue(hasher.verify("secret", against: h))
        XCTAssertFalse(hasher.verify("Secret", against: h))
        XCTAssertNotEqual(hasher.hash("secret"), h, "salted")
    }
}
