import Auth
import XCTest

/// The cluster log's other auth encodings: a write's identity (`RequestIdentity`, etcd's
/// RequestHeader username + auth_revision) and a simple token issued through the log
/// (`SimpleTokenGrant`), and the log index a cluster token names. Hostile bytes give nil, never
/// a trap or another value.
final class ClusterAuthCodingTests: XCTestCase {
    private let identities = [
        RequestIdentity(user: "", authRevision: 0, checkedOnArrival: false),
        RequestIdentity(user: "alice", authRevision: 7, checkedOnArrival: true),
        RequestIdentity(user: "ünïcødé ✓", authRevision: .max, checkedOnArrival: false),
    ]

    private let grants = [
        SimpleTokenGrant(user: "alice", prefix: "abcdefghijklmnoP", checkedRevision: 12),
        SimpleTokenGrant(user: "", prefix: "Z", checkedRevision: 0),
        SimpleTokenGrant(user: "ü", prefix: String(repeating: "x", count: 64), checkedRevision: .max),
    ]

    func testIdentitiesRoundTripFollowedByAnything() {
        for id in identities {
            let bytes = id.wireBytes()
            let decoded = RequestIdentity.decode(prefixOf: bytes + [9, 9, 9])
            XCTAssertEqual(decoded?.identity, id)
            XCTAssertEqual(decoded?.end, bytes.count)
            for n in 0 ..< bytes.count {
                XCTAssertNil(RequestIdentity.decode(prefixOf: Array(bytes.prefix(n))), "\(id) cut at \(n)")
            }
        }
        XCTAssertEqual(RequestIdentity(user: "a", authRevision: 258, checkedOnArrival: true).wireBytes(),
                       [1, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 1, 0x61])
    }

    func testIdentityWithInvalidUTF8OrAHugeLengthIsRefused() {
        XCTAssertNil(RequestIdentity.decode(prefixOf: [1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0xc3, 0x28]))
        XCTAssertNil(RequestIdentity.decode(prefixOf: [1, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x61]))
        XCTAssertNil(RequestIdentity.decode(prefixOf: [2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0x61]), "flag 2")
        XCTAssertNotNil(RequestIdentity.decode(prefixOf: [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0x61]))
        let long = RequestIdentity(user: String(repeating: "u", count: RequestIdentity.maxUserBytes + 1), authRevision: 1,
                                   checkedOnArrival: true)
        XCTAssertNil(RequestIdentity.decode(prefixOf: long.wireBytes()))
    }

    func testGrantsRoundTripAndTheirTokensNameTheIndex() {
        for g in grants {
            XCTAssertEqual(SimpleTokenGrant(wireBytes: g.wireBytes()), g)
        }
        XCTAssertEqual(grants[0].token(index: 42), "abcdefghijklmnoP.42")
        XCTAssertEqual(SimpleTokens.logIndex(of: grants[0].token(index: 42)), 42)
    }

    func testHostileGrantsAreRefused() {
        for g in grants {
            let bytes = g.wireBytes()
            for n in 0 ..< bytes.count {
                XCTAssertNil(SimpleTokenGrant(wireBytes: Array(bytes.prefix(n))), "\(g) cut at \(n)")
            }
            XCTAssertNil(SimpleTokenGrant(wireBytes: bytes + [0]), "trailing byte")
            for i in bytes.indices {
                for v: UInt8 in [0, 1, 0x2e, 0x7f, 0x80, 0xff, bytes[i] &+ 1] {
                    var b = bytes
                    b[i] = v
                    if let decoded = SimpleTokenGrant(wireBytes: b) {
                        XCTAssertEqual(decoded.wireBytes(), b, "\(g) with byte \(i) = \(v)")
                    }
                }
            }
        }
        // Prefixes other than 1-64 ASCII letters: empty, a dot (would change the token's index),
        // a digit, 65 letters.
        for prefix in ["", "ab.1", "a1", String(repeating: "x", count: 65)] {
            let g = SimpleTokenGrant(user: "u", prefix: prefix, checkedRevision: 1)
            XCTAssertNil(SimpleTokenGrant(wireBytes: g.wireBytes()), prefix)
        }
        var wrongVersion = grants[0].wireBytes()
        wrongVersion[0] = 2
        XCTAssertNil(SimpleTokenGrant(wireBytes: wrongVersion))
    }

    func testLogIndexOfTokens() {
        XCTAssertEqual(SimpleTokens.logIndex(of: "abc.18446744073709551615"), .max)
        for token in ["abc.18446744073709551616", "abc.99999999999999999999", "abc.123456789012345678901",
                      "abc.", "abc", "", "abc.+1", "abc.-1", "abc.1a", "abc.١", "a.b.c", "eyJhbGciOi.eyJyZXYi.sig"] {
            XCTAssertNil(SimpleTokens.logIndex(of: token), token)
        }
        XCTAssertEqual(SimpleTokens.logIndex(of: "x.y.0012"), 12)
    }

    func testPersistedStateRecordStillRoundTripsThroughTheSharedReader() throws {
        var s = AuthState()
        s = try s.applying(.roleAdd(name: "root"))
        s = try s.applying(.userAdd(name: "root", passwordHash: "$2b$04$h", noPassword: false))
        s = try s.applying(.userGrantRole(user: "root", role: "root"))
        s = try s.applying(.roleGrantPermission(role: "root", permission: .init(kind: .write, key: [0, 0xff], rangeEnd: [0])))
        s = try s.applying(.enable)
        XCTAssertEqual(AuthState(decoding: s.encoded()), s)
        let bytes = s.encoded()
        for n in 0 ..< bytes.count {
            XCTAssertNil(AuthState(decoding: Array(bytes.prefix(n))), "cut at \(n)")
        }
    }
}
