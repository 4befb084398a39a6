import Auth
import XCTest

/// `AuthState.Mutation`'s wire form (a cluster log entry's auth change): every operation comes
/// back equal, and hostile bytes give nil, never a trap or a different mutation.
final class AuthMutationCodingTests: XCTestCase {
    private let all: [AuthState.Mutation] = [
        .enable, .disable,
        .userAdd(name: "alice", passwordHash: "$2b$10$abcdefghijklmnopqrstuv", noPassword: false),
        .userAdd(name: "nopw", passwordHash: "", noPassword: true),
        .userAdd(name: "ünïcødé ✓", passwordHash: "h", noPassword: false),
        .userDelete(name: "alice"),
        .userChangePassword(name: "alice", passwordHash: "$2b$10$zzz"),
        .userGrantRole(user: "alice", role: "reader"),
        .userRevokeRole(user: "alice", role: "reader"),
        .roleAdd(name: "reader"), .roleDelete(name: "reader"),
        .roleGrantPermission(role: "reader", permission: .init(kind: .read, key: Array("/a".utf8), rangeEnd: Array("/b".utf8))),
        .roleGrantPermission(role: "w", permission: .init(kind: .write, key: [0, 255, 1], rangeEnd: [0])),
        .roleGrantPermission(role: "rw", permission: .init(kind: .readWrite, key: [], rangeEnd: [])),
        .roleRevokePermission(role: "reader", key: Array("/a".utf8), rangeEnd: Array("/b".utf8)),
        .roleAdd(name: ""),
    ]

    func testEveryMutationRoundTrips() {
        for m in all {
            XCTAssertEqual(AuthState.Mutation(wireBytes: m.wireBytes()), m, "\(m)")
        }
        XCTAssertEqual(Set(all.map { $0.wireBytes() }).count, all.count, "two mutations share an encoding")
    }

    func testWrongVersionUnknownOperationAndTrailingBytesAreRefused() {
        var bytes = AuthState.Mutation.enable.wireBytes()
        XCTAssertEqual(bytes, [1, 1])
        bytes[0] = 2
        XCTAssertNil(AuthState.Mutation(wireBytes: bytes))
        XCTAssertNil(AuthState.Mutation(wireBytes: [1, 0]))
        XCTAssertNil(AuthState.Mutation(wireBytes: [1, 12]))
        XCTAssertNil(AuthState.Mutation(wireBytes: [1, 1, 0]))
        XCTAssertNil(AuthState.Mutation(wireBytes: []))
        XCTAssertNil(AuthState.Mutation(wireBytes: [1]))
    }

    func testTruncatedAndOversizedFieldsAreRefused() {
        for m in all {
            let bytes = m.wireBytes()
            for n in 0 ..< bytes.count {
                XCTAssertNil(AuthState.Mutation(wireBytes: Array(bytes.prefix(n))), "\(m) cut at \(n)")
            }
        }
        // A length of 4 GiB - 1, and one past the maximum field size.
        XCTAssertNil(AuthState.Mutation(wireBytes: [1, 8, 0xff, 0xff, 0xff, 0xff, 0x61]))
        let big = UInt32(AuthState.Mutation.maxFieldBytes + 1)
        let length: [UInt8] = withUnsafeBytes(of: big.bigEndian) { Array($0) }
        XCTAssertNil(AuthState.Mutation(wireBytes: [1, 8] + length))
    }

    func testInvalidUTF8AndBadFlagsAreRefused() {
        XCTAssertNil(AuthState.Mutation(wireBytes: [1, 8, 0, 0, 0, 2, 0xc3, 0x28]))
        XCTAssertNotNil(AuthState.Mutation(wireBytes: [1, 8, 0, 0, 0, 2, 0xc3, 0xa9]))
        // userAdd "a" "" with a noPassword flag of 2; permission kind 3.
        XCTAssertNil(AuthState.Mutation(wireBytes: [1, 3, 0, 0, 0, 1, 0x61, 0, 0, 0, 0, 2]))
        XCTAssertNil(AuthState.Mutation(wireBytes: [1, 10, 0, 0, 0, 1, 0x61, 3, 0, 0, 0, 0, 0, 0, 0, 0]))
        XCTAssertNotNil(AuthState.Mutation(wireBytes: [1, 10, 0, 0, 0, 1, 0x61, 2, 0, 0, 0, 0, 0, 0, 0, 0]))
    }

    /// Every single-byte change of every encoding decodes to nil or to some mutation whose own
    /// encoding is exactly those bytes (no trap, no lossy decoding).
    func testEverySingleByteChangeDecodesToNilOrItself() {
        for m in all {
            let bytes = m.wireBytes()
            for i in bytes.indices {
                for v: UInt8 in [0, 1, 2, 3, 0x7f, 0x80, 0xff, bytes[i] &+ 1] {
                    var b = bytes
                    b[i] = v
                    if let decoded = AuthState.Mutation(wireBytes: b) {
                        XCTAssertEqual(decoded.wireBytes(), b, "\(m) with byte \(i) = \(v)")
                    }
                }
            }
        }
    }
}
