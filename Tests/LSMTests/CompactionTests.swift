import Foundation
import XCTest
import EngineAPI
@testable import LSMEngine

final class CompactionTests: XCTestCase {
    private func revision(_ n: Int) -> [UInt8] {
        var k: [UInt8] = []
        for i in (0..<8).reversed() { k.append(UInt8(truncatingIfNeeded: n >> (i * 8))) }
        return k + [0x5F] + [UInt8](repeating: 0, count: 8)
    }

    /// Revision-ordered keys never overlap older tables: flushes land in the bottom level and
    /// nothing is rewritten by compaction. (A flush that meets a running compaction job goes to
    /// level 0 and is moved down without a rewrite: seen 1 in 49 under load, so "almost all".)
    func testOrderedKeysAreFlushedToTheBottomWithoutRewrites() throws {
        let dir = TempDirectory()
        let engine = try LSMEngine.open(directory: dir.store, options: smallOptions(writeBuffer: 16 << 10))
        let value = [UInt8](repeating: 7, count: 100)
        for n in stride(from: 1, through: 5000, by: 50) {
            var b = WriteBatch()
            for i in n..<(n + 50) { b.put(revision(i), value) }
            try engine.write(b, sync: false)
        }
        let s = try engine.stats().details
        XCTAssertGreaterThan(s["flushes"] ?? 0, 10)
        XCTAssertGreaterThanOrEqual(s["flushes.to.bottom"] ?? 0, (s["flushes"] ?? 0) * 0.9)
        XCTAssertEqual(s["compaction.bytes"], 0)
        XCTAssertEqual(try engine.get(revision(1)), value)
        XCTAssertEqual(try engine.readView().entries(.all).count, 5000)
        try engine.close()
    }

    /// MVCC compaction's bulk delete of the oldest revisions: the tombstones are pushed down by
    /// background compaction (no reclaimSpace call) and dropped with the data they delete.
    func testBulkDeleteIsReclaimedInTheBackground() throws {
        let dir = TempDirectory()
        let engine = try LSMEngine.open(directory: dir.store, options: smallOptions(writeBuffer: 16 << 10))
        let value = [UInt8](repeating: 7, count: 100)
        for n in stride(from: 1, through: 5000, by: 50) {
            var b = WriteBatch()
            for i in n..<(n + 50) { b.put(revision(i), value) }
            try engine.write(b, sync: false)
        }
        let bottomBefore = try engine.stats().details["level6.bytes"] ?? 0
        var b = WriteBatch()
        for i in 1...2500 { b.delete(revision(i)) }
        try engine.write(b, sync: false)
        // More writes push the tombstones out of the memtable.
        for n in stride(from: 5001, through: 6000, by: 50) {
            var b = WriteBatch()
            for i in n..<(n + 50) { b.put(revision(i), value) }
            try engine.write(b, sync: false)
        }
        var details: [String: Double] = [:]
        let deadline = Date().addingTimeInterval(20)
        repeat {
            Thread.sleep(forTimeInterval: 0.05)
            details = try engine.stats().details
        } while (details["compactions"] ?? 0) == 0 && Date() < deadline
        // Wait for the pushed-down tombstones to leave the upper levels.
        repeat {
            details = try engine.stats().details
            let upper = (1..<6).reduce(0.0) { $0 + (details["level\($1).bytes"] ?? 0) }
            if upper == 0 { break }
            Thread.sleep(forTimeInterval: 0.05)
        } while Date() < deadline
        XCTAssertGreaterThan(details["compactions"] ?? 0, 0)
        XCTAssertLessThan(details["level6.bytes"] ?? 0, bottomBefore * 0.8, "\(details)")
        XCTAssertNil(try engine.get(revision(1)))
        XCTAssertEqual(try engine.get(revision(2501)), value)
        XCTAssertEqual(try engine.readView().entries(.all).count, 3500)
        try engine.close()
    }
}
