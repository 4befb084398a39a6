import XCTest
import EngineAPI
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
        // The first entry is decoded when the block is opened: refusing it there is fine too.
        guard let malformed = block(truncated) else { return }
        let cursor = BlockCursor()
        cursor.reset(malformed)
        var ok = cursor.seekToFirst()
        var steps = 0
        while ok && cursor.isValid && steps < 100 { ok = cursor.next(); steps += 1 }
        XCTAssertFalse(ok, "a malformed entry must be reported")
    }

    /// Entries of both kinds with sequences far apart, in both directions (tags are deltas
    /// against the previous entry or the block's first), including 0 and the largest sequence.
    private func scattered(_ n: Int) -> [([UInt8], [UInt8])] {
        var rng = SystemRandomNumberGenerator()
        var out: [([UInt8], [UInt8])] = []
        let specials: [UInt64] = [0, 1, maxSequence, maxSequence - 1, 1 << 40, 127, 128]
        for i in 0..<n {
            let user = String(format: "user%05d", i / 3) + (i % 4 == 0 ? "-suffix" : "")
            let seq = i < specials.count ? specials[i] : UInt64.random(in: 0...maxSequence, using: &rng)
            let kind: ValueKind = i % 5 == 0 ? .deletion : .value
            let value = kind == .deletion ? [] : [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: (i * 53) % 400)
            out.append((makeInternalKey(Array(user.utf8), seq, kind), value))
        }
        return out.sorted { a, b in a.0.withUnsafeBytes { x in b.0.withUnsafeBytes { compareInternalKeys(x, $0) < 0 } } }
    }

    private func checkAgainstArray(_ entries: [([UInt8], [UInt8])], _ b: Block, _ label: String) {
        let cursor = BlockCursor()
        cursor.reset(b)
        var seen: [[UInt8]] = []
        XCTAssertTrue(cursor.seekToFirst())
        while cursor.isValid {
            seen.append(Array(cursor.key))
            XCTAssertEqual(Array(cursor.value), entries[seen.count - 1].1, label)
            XCTAssertTrue(cursor.next())
        }
        XCTAssertEqual(seen, entries.map(\.0), label)
        seen = []
        XCTAssertTrue(cursor.seekToLast())
        while cursor.isValid {
            seen.append(Array(cursor.key))
            XCTAssertTrue(cursor.prev())
        }
        XCTAssertEqual(seen, entries.reversed().map(\.0), label)
        for (i, e) in entries.enumerated() {
            XCTAssertTrue(e.0.withUnsafeBytes { cursor.seek($0) })
            XCTAssertEqual(cursor.isValid ? Array(cursor.key) : [], e.0, "\(label) seek \(i)")
            // The same user key one sequence later (sorts before it) finds this entry too, or an
            // entry of that user key with a sequence in between.
            let t = trailer(e.0.withUnsafeBytes { $0 })
            if t >> 8 < maxSequence {
                let probe = makeInternalKey(Array(e.0.dropLast(8)), (t >> 8) + 1, .value)
                let lower = entries.firstIndex { x in x.0.withUnsafeBytes { a in probe.withUnsafeBytes { compareInternalKeys(a, $0) >= 0 } } }
                XCTAssertTrue(probe.withUnsafeBytes { cursor.seek($0) })
                XCTAssertEqual(cursor.isValid ? Array(cursor.key) : [], lower.map { entries[$0].0 } ?? [], "\(label) probe \(i)")
            }
        }
    }

    func testScatteredSequencesAndDeletions() throws {
        for n in [1, 2, 5, 17, 64, 300] {
            let entries = scattered(n)
            checkAgainstArray(entries, try makeBlock(entries), "n=\(n)")
        }
    }

    func testBlocksOver64KiBUseWideRestartOffsets() throws {
        var entries: [([UInt8], [UInt8])] = []
        for i in 0..<400 {
            entries.append((makeInternalKey(Array(String(format: "k%06d", i).utf8), UInt64(10_000 - i), .value),
                            [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 300)))
        }
        let b = try makeBlock(entries)
        XCTAssertFalse(b.narrowRestarts, "entries end past 64 KiB: restart offsets need 32 bits")
        checkAgainstArray(entries, b, "wide")
        let small = try makeBlock(Array(entries.prefix(20)))
        XCTAssertTrue(small.narrowRestarts)
        checkAgainstArray(Array(entries.prefix(20)), small, "narrow")
    }

    /// etcd's workload: revision keys in order, consecutive sequences, 256-byte values. Per
    /// entry the format spends 4 header bytes (shared, unshared, 2-byte value length, 1-byte
    /// tag) and the user key bytes that differ from the previous (or the block's first) key.
    func testRevisionKeysInOrderCostNoTrailerBytes() throws {
        var builder = BlockBuilder()
        var entries: [([UInt8], [UInt8])] = []
        for i in 0..<15 {
            var user = [UInt8](repeating: 0, count: 17)
            user[7] = UInt8(i + 1)
            user[8] = UInt8(ascii: "_")
            let k = makeInternalKey(user, UInt64(5_000_000 + i), .value)
            let v = [UInt8](repeating: UInt8(i), count: 256)
            entries.append((k, v))
            k.withUnsafeBytes { kb in v.withUnsafeBytes { builder.add(kb, $0) } }
        }
        let raw = builder.finish()
        let b = try XCTUnwrap(block(raw))
        // First entry: 17 key bytes and a 4-byte absolute tag; the rest: 10 key bytes, 1-byte tag.
        let expectedEntries = (1 + 1 + 2 + 4 + 17 + 256) + 14 * (1 + 1 + 2 + 1 + 10 + 256)
        XCTAssertEqual(b.dataLimit, expectedEntries)
        XCTAssertEqual(raw.count, expectedEntries + 2 * b.restartCount + 4)
        checkAgainstArray(entries, b, "revisions")
    }
}
