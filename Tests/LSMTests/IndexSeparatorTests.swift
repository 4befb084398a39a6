import Foundation
import XCTest
import EngineAPI
@testable import LSMEngine

/// Index keys: every separator must sort at or after the block's last key and before the next
/// block's first key (else lookups pick the wrong block), and it should be short.
final class IndexSeparatorTests: XCTestCase {
    private func less(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBytes { x in b.withUnsafeBytes { compareInternalKeys(x, $0) < 0 } }
    }

    private func check(_ a: [UInt8], _ b: [UInt8], file: StaticString = #filePath, line: UInt = #line) {
        let s = b.withUnsafeBytes { IndexSeparator.between(a, $0) }
        XCTAssertFalse(less(s, a), "separator < last key: \(a) \(s)", file: file, line: line)
        XCTAssertTrue(less(s, b), "separator >= next key: \(s) \(b)", file: file, line: line)
        XCTAssertLessThanOrEqual(s.count, a.count, file: file, line: line)
        let t = IndexSeparator.successor(a)
        XCTAssertFalse(less(t, a), "successor < key: \(a) \(t)", file: file, line: line)
        XCTAssertLessThanOrEqual(t.count, a.count, file: file, line: line)
    }

    func testRandomPairsAreSeparated() {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [UInt8] = [0, 1, 0x5F, 0x7F, 0x80, 0xFE, 0xFF]
        for _ in 0..<20_000 {
            func key() -> [UInt8] {
                let n = Int.random(in: 0...6, using: &rng)
                let user = (0..<n).map { _ in alphabet.randomElement(using: &rng)! }
                let kind: ValueKind = Bool.random(using: &rng) ? .value : .deletion
                return makeInternalKey(user, UInt64.random(in: 0...3, using: &rng), kind)
            }
            var a = key(), b = key()
            if a == b { continue }
            if less(b, a) { swap(&a, &b) }
            check(a, b)
        }
    }

    func testRevisionKeysShortenToNineBytes() {
        func revision(_ main: UInt64) -> [UInt8] {
            var k = [UInt8](repeating: 0, count: 17)
            withUnsafeBytes(of: main.bigEndian) { for j in 0..<8 { k[j] = $0[j] } }
            k[8] = UInt8(ascii: "_")
            return makeInternalKey(k, main, .value)
        }
        for (x, y) in [(UInt64(7), UInt64(8)), (255, 256), (0x1_00FF, 0x1_0100), (1000, 5000)] {
            let a = revision(x), b = revision(y)
            check(a, b)
            let s = b.withUnsafeBytes { IndexSeparator.between(a, $0) }
            XCTAssertLessThanOrEqual(s.count - 8, 9, "\(x) -> \(y)")
        }
        // The last block's key: one byte above the common zero prefix of small revisions.
        XCTAssertEqual(IndexSeparator.successor(revision(42)).count, 1 + 8)
    }

    func testTableLookupsUseSeparators() throws {
        // With a filter, and without (bottom-level tables): same answers.
        try tableLookups(filter: true)
        try tableLookups(filter: false)
    }

    private func tableLookups(filter: Bool) throws {
        // Many small blocks; every key found through the shortened index, absent keys not.
        let dir = TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.store, withIntermediateDirectories: true)
        let path = dir.store + "/000001.sst"
        let builder = try TableBuilder(path: path, filter: filter)
        var keys: [[UInt8]] = []
        for i in 0..<2000 {
            let k = makeInternalKey(Array(String(format: "key%05d", i * 2).utf8), UInt64(i + 1), .value)
            keys.append(k)
            let v = [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 100)
            try k.withUnsafeBytes { kb in try v.withUnsafeBytes { try builder.add(kb, $0) } }
        }
        _ = try builder.finish()
        let table = try Table(path: path, number: 1)
        // The footer's filter size: 10 bits per key, or nothing.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let footer = bytes.count - TableFormat.footerSize
        let filterSize = bytes.withUnsafeBytes { loadFixed64($0, footer + 24) }
        if filter { XCTAssertGreaterThanOrEqual(filterSize, 2000 * 10 / 8) } else { XCTAssertEqual(filterSize, 0) }
        XCTAssertGreaterThan(table.indexBlock.count, 20)
        let cursor = BlockCursor()
        for i in 0..<2000 {
            for (n, present) in [(i * 2, true), (i * 2 + 1, false)] {
                let user = Array(String(format: "key%05d", n).utf8)
                let target = makeInternalKey(user, maxSequence, .value)
                let r = try target.withUnsafeBytes { try table.get($0, hash: BloomFilter.hash(UnsafeRawBufferPointer(rebasing: $0[0..<user.count])), cursor: cursor) }
                if case .found(let v) = r {
                    XCTAssertTrue(present, "found absent key \(n)")
                    XCTAssertEqual(v, [UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 100))
                } else {
                    XCTAssertFalse(present, "missed key \(n)")
                }
            }
        }
        // A full scan and a reverse scan see every key once, in order.
        let it = table.makeIterator()
        var seen: [[UInt8]] = []
        try it.seekToFirst()
        while it.isValid { seen.append(Array(it.key)); try it.next() }
        XCTAssertEqual(seen, keys)
        seen = []
        try it.seekToLast()
        while it.isValid { seen.append(Array(it.key)); try it.prev() }
        XCTAssertEqual(seen, keys.reversed())
    }
}
