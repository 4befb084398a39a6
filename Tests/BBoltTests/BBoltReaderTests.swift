import XCTest
@testable import BBolt

/// The bbolt reader against databases our writer made (bbolt and etcdctl judge the writer in
/// Tests/compat/test_snapshot_etcd.py) and against corrupt copies of them: every corruption
/// must be an error naming an offset, never a trap or silently wrong data.
final class BBoltReaderTests: XCTestCase {
    /// A database of `buckets`, each with its keys (ascending), written in two passes.
    static func database(_ buckets: [(String, [([UInt8], [UInt8])])]) throws -> [UInt8] {
        func run(_ plan: BBoltWriter.Plan?, _ sink: BBoltWriter.Sink?) throws -> BBoltWriter.Plan {
            var w = try BBoltWriter(plan: plan, sink: sink)
            for (name, keys) in buckets {
                try w.beginBucket(Array(name.utf8))
                for (k, v) in keys { try w.put(k, v) }
                try w.endBucket()
            }
            return try w.finish()
        }
        let plan = try run(nil, nil)
        XCTAssertEqual(try run(nil) { _ in }, plan, "a planning pass with a sink plans the same")
        final class Out { var bytes: [UInt8] = [] }
        let out = Out()
        try run(plan) { out.bytes.append(contentsOf: $0) }
        XCTAssertEqual(out.bytes.count, Int(plan.pageCount) * 4096)
        return out.bytes
    }

    static func key(_ i: Int) -> [UInt8] { Array(String(1_000_000 + i).utf8) }

    /// A database with a multi-level tree, an overflow value and an empty bucket.
    static func sample() throws -> [UInt8] {
        try database([
            ("a", [([1], [2])]),
            ("big", [([1], [UInt8](repeating: 7, count: 20_000)), ([2], [3])]),
            ("empty", []),
            ("key", (0..<20_000).map { (key($0), [UInt8](repeating: UInt8($0 & 0xff), count: $0 % 300)) }),
        ])
    }

    func read(_ bytes: [UInt8]) throws -> [String: [([UInt8], [UInt8])]] {
        let r = try BBoltReader(BBoltBytes(bytes))
        let visited = VisitedPages()
        var out: [String: [([UInt8], [UInt8])]] = [:]
        var buckets: [(String, BBoltReader.Bucket)] = []
        try r.forEach(r.root, visited: visited) { e in
            buckets.append((String(decoding: e.key, as: UTF8.self), try XCTUnwrap(e.nested)))
        }
        for (name, b) in buckets {
            var keys: [([UInt8], [UInt8])] = []
            try r.forEach(b, visited: visited) { keys.append(($0.key, $0.value)) }
            out[name] = keys
        }
        return out
    }

    func testRoundTrip() throws {
        let bytes = try Self.sample()
        let got = try read(bytes)
        XCTAssertEqual(got.keys.sorted(), ["a", "big", "empty", "key"])
        XCTAssertEqual(got["big"]?.first?.1.count, 20_000)
        XCTAssertEqual(got["empty"]?.count, 0)
        let keys = try XCTUnwrap(got["key"])
        XCTAssertEqual(keys.count, 20_000)
        for (i, (k, v)) in keys.enumerated() where i % 997 == 0 {
            XCTAssertEqual(k, Self.key(i))
            XCTAssertEqual(v, [UInt8](repeating: UInt8(i & 0xff), count: i % 300))
        }
        XCTAssertEqual(try BBoltReader(BBoltBytes(bytes)).validateAll(), 4 + 1 + 2 + 20_000)
    }

    func testWriterRefusesUnorderedInput() throws {
        var w = try BBoltWriter(plan: nil) { _ in }
        try w.beginBucket([2])
        try w.put([5], [])
        XCTAssertThrowsError(try w.put([5], []))
        XCTAssertThrowsError(try w.put([4], []))
        XCTAssertThrowsError(try w.put([], []))
        try w.endBucket()
        XCTAssertThrowsError(try w.beginBucket([1]))
    }

    func testWriterRefusesAChangedSecondPass() throws {
        let plan = BBoltWriter.Plan(rootPage: 3, pageCount: 4)
        var w = try BBoltWriter(plan: plan) { _ in }
        try w.beginBucket([1])
        try w.put([1], [2])
        try w.endBucket()
        XCTAssertThrowsError(try w.finish())
    }

    /// Asserts that reading `bytes` fails with an error naming an offset.
    func assertRejected(_ bytes: [UInt8], _ what: String, line: UInt = #line) {
        do {
            let r = try BBoltReader(BBoltBytes(bytes))
            try r.validateAll()
            XCTFail("\(what): accepted", line: line)
        } catch let e as BBoltError {
            XCTAssertNotNil(e.offset, "\(what): \(e) names no offset", line: line)
        } catch {
            XCTFail("\(what): unexpected \(error)", line: line)
        }
    }

    /// Page ids of the first leaf and the first branch page of the "key" bucket.
    func pages(_ bytes: [UInt8], flags: UInt16) -> [Int] {
        stride(from: 3 * 4096, to: bytes.count, by: 4096).filter {
            bytes.bboltLoad(UInt16.self, at: $0 + 8) == flags && bytes.bboltLoad(UInt64.self, at: $0) == UInt64($0 / 4096)
        }.map { $0 / 4096 }
    }

    func testCorruptFilesAreRejectedWithAnOffset() throws {
        let good = try Self.sample()
        let branches = pages(good, flags: 0x01)
        let leaves = pages(good, flags: 0x02)
        XCTAssertFalse(branches.isEmpty)
        XCTAssertFalse(leaves.isEmpty)

        // Truncation: the meta page's page count exceeds the file.
        assertRejected(Array(good.prefix(good.count - 4096)), "truncated by one page")
        assertRejected(Array(good.prefix(100)), "truncated to 100 bytes")
        assertRejected([], "empty")

        // Meta checksums: both broken, or magic gone.
        var b = good
        b[16 + 40] ^= 1
        b[4096 + 16 + 40] ^= 1
        assertRejected(b, "both meta checksums")
        b = good
        b[16] ^= 0xff
        b[4096 + 16] ^= 0xff
        assertRejected(b, "magic")

        // One damaged meta page: the other is used.
        b = good
        b[16 + 40] ^= 1
        XCTAssertNoThrow(try BBoltReader(BBoltBytes(b)).validateAll(), "meta 0 damaged, meta 1 intact")

        // A branch element pointing past the end, at itself (cycle), and at a meta page.
        let branch = branches[0] * 4096
        for (target, what) in [(UInt64(1 << 40), "page id out of range"), (UInt64(branches[0]), "cycle"), (UInt64(0), "meta page as child")] {
            b = good
            b.bboltStore(target, at: branch + 16 + 8)
            assertRejected(b, what)
        }
        // Two elements pointing at the same child.
        b = good
        b.bboltStore(b.bboltLoad(UInt64.self, at: branch + 16 + 8), at: branch + 32 + 8)
        assertRejected(b, "shared child")

        // Wrong page type, wrong page id, huge overflow, huge count, element past the page.
        let leaf = leaves[leaves.count / 2] * 4096   // a leaf of "key", not its first
        b = good; b.bboltStore(UInt16(0x10), at: leaf + 8); assertRejected(b, "freelist flag on a leaf")
        b = good; b.bboltStore(UInt16(0x04), at: leaf + 8); assertRejected(b, "meta flag on a leaf")
        b = good; b.bboltStore(UInt64(5), at: leaf); assertRejected(b, "wrong page id")
        b = good; b.bboltStore(UInt32.max, at: leaf + 12); assertRejected(b, "overflow count")
        b = good; b.bboltStore(UInt16(0xFFFF), at: leaf + 10); assertRejected(b, "element count")
        b = good; b.bboltStore(UInt32.max, at: leaf + 16 + 4); assertRejected(b, "element position")
        b = good; b.bboltStore(UInt32.max, at: leaf + 16 + 12); assertRejected(b, "value size")
        // Keys out of order.
        b = good
        let firstKey = leaf + 16 + Int(b.bboltLoad(UInt32.self, at: leaf + 16 + 4))
        b[firstKey] = 0xff
        assertRejected(b, "keys out of order")
    }

    /// Random damage never traps; whatever is accepted reads without error end to end.
    func testRandomCorruptionNeverTraps() throws {
        let good = try Self.database([("k", (0..<600).map { (Self.key($0), Array(repeating: 1, count: $0 % 50)) }),
                                      ("m", [([1], [2])])])
        var rng = SplitMix(seed: 18)
        var rejected = 0
        for _ in 0..<3000 {
            var b = good
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let at = Int(rng.next() % UInt64(b.count))
                b[at] = UInt8(truncatingIfNeeded: rng.next())
            }
            if rng.next() % 8 == 0 { b = Array(b.prefix(Int(rng.next() % UInt64(b.count)))) }
            do { try BBoltReader.validate(bytes: b) } catch is BBoltError { rejected += 1 }
        }
        XCTAssertGreaterThan(rejected, 0)
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
