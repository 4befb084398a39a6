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

    /// Revision-ordered keys never overlap older tables: every flush lands in the bottom level
    /// and nothing is rewritten by compaction. The stats are read after every batch too, while
    /// flushes run: a flush is counted (and counted as one to the bottom) in one step once it is
    /// in the version (the bottom count once ran ahead while the manifest was being written).
    func testOrderedKeysAreFlushedToTheBottomWithoutRewrites() throws {
        let dir = TempDirectory()
        let engine = try LSMEngine.open(directory: dir.store, options: smallOptions(writeBuffer: 16 << 10))
        let value = [UInt8](repeating: 7, count: 100)
        for n in stride(from: 1, through: 5000, by: 50) {
            var b = WriteBatch()
            for i in n..<(n + 50) { b.put(revision(i), value) }
            try engine.write(b, sync: false)
            let s = try engine.stats().details
            XCTAssertEqual(s["flushes.to.bottom"], s["flushes"], "after the batch at \(n)")
        }
        let s = try engine.stats().details
        XCTAssertGreaterThan(s["flushes"] ?? 0, 10)
        XCTAssertEqual(s["flushes.to.bottom"], s["flushes"])
        XCTAssertEqual(s["trivial.moves"], 0)
        XCTAssertEqual(s["compaction.bytes"], 0)
        XCTAssertEqual(try engine.get(revision(1)), value)
        XCTAssertEqual(try engine.readView().entries(.all).count, 5000)
        try engine.close()
    }

    /// A flush between the output files of a compaction job goes as deep as it would with no job
    /// running when its keys do not touch the job's (its outputs hold only its inputs' keys), and
    /// to level 0 when they do.
    func testFlushDuringACompactionJobAvoidsOnlyTheJobsKeys() throws {
        let dir = TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.store, withIntermediateDirectories: true)
        func table(_ number: UInt64, _ keys: ClosedRange<Int>) throws -> (FileMetadata, Table) {
            let mem = Memtable(logNumber: 0)
            for (i, k) in keys.enumerated() { mem.add(sequence: number * 1000 + UInt64(i) + 1, kind: .value, key: revision(k), value: [1]) }
            return try Flush.writeTable(mem, directory: dir.store, number: number)
        }
        // The bottom level (6) holds keys 100...200, level 4 keys 500...600.
        let (bottom, bottomTable) = try table(1, 100...200)
        let (upper, upperTable) = try table(2, 500...600)
        var edit = VersionEdit()
        edit.added = [(level: 6, file: bottom), (level: 4, file: upper)]
        let v = Version.empty.applying(edit, tables: [1: bottomTable, 2: upperTable])
        XCTAssertEqual(v.levels.map(\.count), [0, 0, 0, 0, 1, 0, 1])
        let job = Flush.userKeyRange([bottom]) // a job rewriting the bottom file
        XCTAssertEqual(job?.smallest, revision(100))
        XCTAssertEqual(job?.largest, revision(200))
        func level(_ keys: ClosedRange<Int>, _ running: (smallest: [UInt8], largest: [UInt8])?) -> Int {
            revision(keys.lowerBound).withUnsafeBytes { s in
                revision(keys.upperBound).withUnsafeBytes { Flush.pickLevel(v, smallestUser: s, largestUser: $0, running: running) }
            }
        }
        XCTAssertEqual(level(300...400, nil), 6)
        XCTAssertEqual(level(300...400, job), 6)  // level 0 whenever a job ran, before
        XCTAssertEqual(level(700...800, job), 6)
        XCTAssertEqual(level(550...800, job), 3)  // above the level-4 file it overlaps
        XCTAssertEqual(level(150...160, nil), 5)
        XCTAssertEqual(level(150...160, job), 0)  // inside the job's keys
        XCTAssertEqual(level(50...100, job), 0)   // shares its smallest key
        XCTAssertEqual(level(200...250, job), 0)  // shares its largest key
        XCTAssertEqual(level(50...250, job), 0)   // spans it
        let both = Flush.userKeyRange([upper, bottom])
        XCTAssertEqual(both?.smallest, revision(100))
        XCTAssertEqual(both?.largest, revision(600))
        XCTAssertNil(Flush.userKeyRange([]))
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
