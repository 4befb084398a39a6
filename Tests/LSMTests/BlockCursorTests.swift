import XCTest
@testable import LSMEngine

/// The in-place block cursor against a sorted array of the same entries: every seek, and full
/// walks both ways, over blocks with several restart intervals, keys of varying length and
/// shared prefixes, and values of varying size (some needing multi-byte varints).
final class BlockCursorTests: XCTestCase {
    /// Block contents, alive for the test (a `Block` points into memory it does not own).
    private final class Bytes {
        let buffer: UnsafeMutableRawBufferPointer
        let count: Int
        init(_ raw: [UInt8]) {
            count = raw.count
            buffer = .allocate(byteCount: max(raw.count, 1), alignment: 8)
            raw.withUnsafeBytes { if $0.count > 0 { buffer.copyMemory(from: $0) } }
        }
        deinit { buffer.deallocate() }
        var raw: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[0..<count]) }
    }
    private var keepAlive: [Bytes] = []

    private func block(_ raw: [UInt8]) -> Block? {
        let b = Bytes(raw)
        keepAlive.append(b)
        return Block(b.raw)
    }

    private func internalKey(_ user: String, _ seq: UInt64) -> [UInt8] {
        makeInternalKey(Array(user.utf8), seq, .value)
    }

    private func makeBlock(_ entries: [([UInt8], [UInt8])]) throws -> Block {
        var builder = BlockBuilder()
        for (k, v) in entries { k.withUnsafeBytes { kb in v.withUnsafeBytes { builder.add(kb, $0) } } }
        let raw = builder.finish()
        return try XCTUnwrap(block(raw))
    }

    private func sample(_ n: Int) -> [([UInt8], [UInt8])] {
        var out: [([UInt8], [UInt8])] = []
        for i in 0..<n {
            let user = "k" + String(repeating: "x", count: i % 5) + String(format: "%06d", i * 3)
            let value = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: (i * 37) % 300)
            out.append((internalKey(user, UInt64(1000 - i % 7)), value))
        }
        // BlockBuilder needs keys in internal-key order.
        return out.sorted { a, b in a.0.withUnsafeBytes { x in b.0.withUnsafeBytes { compareInternalKeys(x, $0) < 0 } } }
    }

    func testWalksForwardAndBackward() throws {
        for n in [1, 2, 15, 16, 17, 33, 200] {
            let entries = sample(n)
            let cursor = BlockCursor()
            cursor.reset(try makeBlock(entries))
            var seen: [([UInt8], [UInt8])] = []
            XCTAssertTrue(cursor.seekToFirst())
            while cursor.isValid {
                seen.append((Array(cursor.key), Array(cursor.value)))
                XCTAssertTrue(cursor.next())
            }
            XCTAssertEqual(seen.map(\.0), entries.map(\.0), "forward, n=\(n)")
            XCTAssertEqual(seen.map(\.1), entries.map(\.1), "forward values, n=\(n)")
            seen = []
            XCTAssertTrue(cursor.seekToLast())
            while cursor.isValid {
                seen.append((Array(cursor.key), Array(cursor.value)))
                XCTAssertTrue(cursor.prev())
            }
            XCTAssertEqual(seen.map(\.0), entries.reversed().map(\.0), "backward, n=\(n)")
            XCTAssertEqual(seen.map(\.1), entries.reversed().map(\.1), "backward values, n=\(n)")
        }
    }

    func testSeekAndSeekBeforeMatchBinarySearch() throws {
        let entries = sample(150)
        let cursor = BlockCursor()
        cursor.reset(try makeBlock(entries))
        var targets = entries.map(\.0)
        for i in stride(from: 0, to: 460, by: 2) { targets.append(internalKey("k" + String(format: "%06d", i), 1003)) }
        targets.append(internalKey("a", 1))
        targets.append(internalKey("z", 1))
        for t in targets {
            let lower = entries.firstIndex { e in e.0.withUnsafeBytes { x in t.withUnsafeBytes { compareInternalKeys(x, $0) >= 0 } } }
            XCTAssertTrue(t.withUnsafeBytes { cursor.seek($0) })
            if let lower {
                XCTAssertTrue(cursor.isValid)
                XCTAssertEqual(Array(cursor.key), entries[lower].0)
                XCTAssertEqual(Array(cursor.value), entries[lower].1)
            } else {
                XCTAssertFalse(cursor.isValid)
            }
            let before = (lower ?? entries.count) - 1
            XCTAssertTrue(t.withUnsafeBytes { cursor.seekBefore($0) })
            if before >= 0 {
                XCTAssertTrue(cursor.isValid)
                XCTAssertEqual(Array(cursor.key), entries[before].0)
            } else {
                XCTAssertFalse(cursor.isValid)
            }
        }
    }

    func testMalformedBlocksAreRefused() throws {
        let entries = sample(40)
        var builder = BlockBuilder()
        for (k, v) in entries { k.withUnsafeBytes { kb in v.withUnsafeBytes { builder.add(kb, $0) } } }
        let raw = builder.finish()
        // A restart count larger than the block.
        var bad = raw
        bad.overwriteFixed32(at: bad.count - 4, 1_000_000)
        XCTAssertNil(block(bad))
        // An entry whose value runs past the entries: the cursor reports it instead of reading on.
        var truncated = raw
        truncated[1] = 0x7F // first entry's unshared length
        truncated[2] = 0x7F // and value length
        let malformed = try XCTUnwrap(block(truncated))
        let cursor = BlockCursor()
        cursor.reset(malformed)
        var ok = cursor.seekToFirst()
        var steps = 0
        while ok && cursor.isValid && steps < 100 { ok = cursor.next(); steps += 1 }
        XCTAssertFalse(ok, "a malformed entry must be reported")
    }
}
