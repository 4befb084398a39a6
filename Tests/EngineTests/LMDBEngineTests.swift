import XCTest
import EngineAPI
@testable import LMDBEngine
#if canImport(Glibc)
import Glibc
#endif

/// LMDB-specific behaviour beyond the shared suite: map growth, key limits, reader slots of
/// killed processes, generation swap of reclaimSpace (checked with lmdb-utils' mdb_stat).
final class LMDBEngineTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = try PosixFiles.makeTemporaryDirectory(prefix: "rusd-lmdb-test") + "/store"
    }

    override func tearDownWithError() throws {
        try PosixFiles.removeTree(PosixFiles.parentDirectory(of: directory))
    }

    func testMapGrowsByItselfWhileReadersRead() throws {
        let engine = try LMDBEngine.open(directory: directory, options: EngineOptions(), initialMapSize: 1 << 20)
        defer { try? engine.close() }
        var seed = WriteBatch()
        seed.put(Array("before".utf8), Array("old".utf8))
        try engine.write(seed, sync: true)
        let oldView = try engine.readView()
        let done = EngineLocked(false)
        let readerRounds = EngineLocked(0)
        let value = [UInt8](repeating: 0xAB, count: 64 << 10)
        try runOnThreads([
            {
                defer { done.withLock { $0 = true } }
                for b in 0..<40 {
                    var batch = WriteBatch()
                    for i in 0..<4 { batch.put(Array("grow/\(b)/\(i)".utf8), value) }
                    try engine.write(batch, sync: false)
                    _ = try engine.stats()  // commits the logged batch to LMDB now: one transaction per batch
                }
            },
            {
                while !done.withLock({ $0 }) {
                    let view = try engine.readView()
                    var count = 0
                    try view.scan(.prefix(Array("grow/".utf8)), reverse: false, limit: nil) { _, v in
                        if v.count != value.count { throw EngineError(.corruption, engine: "test", path: "", operation: "scan", message: "short value") }
                        count += 1
                        return true
                    }
                    XCTAssertEqual(count % 4, 0, "a batch was seen partly")
                    _ = try engine.get(Array("grow/0/0".utf8))
                    readerRounds.withLock { $0 += 1 }
                }
            },
        ])
        let stats = try engine.stats()
        XCTAssertGreaterThanOrEqual(stats.details["map.growths"] ?? 0, 3, "\(stats.details)")
        XCTAssertGreaterThan(stats.details["map.bytes"] ?? 0, 10 * 1024 * 1024)
        XCTAssertEqual(stats.entryCount, 161)
        XCTAssertEqual(try oldView.entries(.all), [KeyValue(key: Array("before".utf8), value: Array("old".utf8))])
        XCTAssertEqual(try engine.readView().entries(.prefix(Array("grow/".utf8))).count, 160)
        print("lmdb: map grew \(Int(stats.details["map.growths"] ?? 0)) times to \(Int(stats.details["map.bytes"] ?? 0)) bytes while a reader completed \(readerRounds.withLock { $0 }) rounds")
    }

    func testMaxSizeBytesStopsGrowthWithFull() throws {
        var options = EngineOptions()
        options.maxSizeBytes = 4 << 20
        let engine = try LMDBEngine.open(directory: directory, options: options, initialMapSize: 1 << 20)
        defer { try? engine.close() }
        var written = 0
        do {
            for b in 0..<100 {
                var batch = WriteBatch()
                batch.put(Array("k\(b)".utf8), [UInt8](repeating: 1, count: 256 << 10))
                try engine.write(batch, sync: false)
                written += 1
            }
            XCTFail("wrote 25 MiB into a 4 MiB store")
        } catch let error as EngineError {
            XCTAssertEqual(error.kind, .full, "\(error)")
            XCTAssertTrue(error.message.contains("maxSizeBytes"), "\(error)")
        }
        XCTAssertGreaterThan(written, 5)
        XCTAssertEqual(try engine.readView().entries(.all).count, written)
    }

    func testKeyLimits() throws {
        let engine = try LMDBEngine.open(directory: directory)
        defer { try? engine.close() }
        var ok = WriteBatch()
        ok.put([UInt8](repeating: 7, count: 511), [1])
        try engine.write(ok, sync: true)
        XCTAssertEqual(try engine.get([UInt8](repeating: 7, count: 511)), [1])
        for bad in [[UInt8](), [UInt8](repeating: 7, count: 512)] {
            var batch = WriteBatch()
            batch.put(Array("x".utf8), [2])
            batch.put(bad, [3])
            XCTAssertThrowsError(try engine.write(batch, sync: true)) { error in
                XCTAssertEqual((error as? EngineError)?.kind, .invalidArgument, "\(error)")
            }
        }
        XCTAssertNil(try engine.get(Array("x".utf8)), "part of a refused batch was applied")
        XCTAssertNil(try engine.get([UInt8](repeating: 7, count: 600)))
        XCTAssertNil(try engine.get([]))
    }

    func testSecondOpenOfTheSameDirectoryIsRefused() throws {
        let engine = try LMDBEngine.open(directory: directory)
        defer { try? engine.close() }
        XCTAssertThrowsError(try LMDBEngine.open(directory: directory)) { error in
            XCTAssertEqual((error as? EngineError)?.kind, .io, "\(error)")
            XCTAssertTrue("\(error)".contains("already open"), "\(error)")
        }
        try engine.close()
        let again = try LMDBEngine.open(directory: directory)
        try again.close()
    }

    /// A process holding hundreds of read views is killed, three times; if its reader slots
    /// leaked, the 1024-slot table could not then give 1000 views to this process.
    func testReaderSlotsOfKilledProcessesAreNotLeaked() throws {
        let writer = try XCTUnwrap(killWriterPath(), "engine-kill-writer not built")
        try LMDBEngine.open(directory: directory).close()
        for _ in 0..<3 {
            let child = try ChildProcess(executable: writer, arguments: ["lmdb", directory, "hold-views", "400"])
            let lines = child.readLines(until: monotonicMilliseconds() + 20_000) { $0.hasPrefix("ready") }
            XCTAssertTrue(lines.contains("ready 400"), "\(lines)")
            child.killHard()
            child.waitForExit()
        }
        let engine = try LMDBEngine.open(directory: directory)
        defer { try? engine.close() }
        let views = try (0..<1000).map { _ in try engine.readView() }
        XCTAssertEqual(views.count, 1000)
        XCTAssertLessThanOrEqual(try engine.stats().details["readers.slots.used"] ?? 9999, 1024)
    }

    /// reclaimSpace writes a compacted generation, switches GENERATION, keeps the old one for the
    /// view still reading it and deletes it when that view ends. mdb_stat (lmdb-utils) reads
    /// the new generation independently.
    func testReclaimSpaceSwapsGenerationsAndShrinks() throws {
        let engine = try LMDBEngine.open(directory: directory)
        defer { try? engine.close() }
        for b in 0..<40 {
            var batch = WriteBatch()
            for i in 0..<10 { batch.put(Array("r/\(b)/\(i)".utf8), [UInt8](repeating: UInt8(b), count: 20_000)) }
            try engine.write(batch, sync: false)
        }
        _ = try engine.stats()  // the puts reach LMDB before the deletes (otherwise they cancel out in memory)
        var deletes = WriteBatch()
        for b in 0..<36 { for i in 0..<10 { deletes.delete(Array("r/\(b)/\(i)".utf8)) } }
        try engine.write(deletes, sync: true)
        let before = try engine.stats()
        var view: (any ReadView)? = try engine.readView()
        try engine.reclaimSpace()
        XCTAssertEqual(String(decoding: try PosixFiles.readFile(directory + "/GENERATION"), as: UTF8.self), "gen-000002\n")
        XCTAssertTrue(PosixFiles.isDirectory(directory + "/gen-000001"), "the old generation must stay while a view reads it")
        XCTAssertEqual(try view!.entries(.all).count, 40)
        view = nil
        XCTAssertFalse(PosixFiles.isDirectory(directory + "/gen-000001"), "the old generation must go when its last view ends")
        let after = try engine.stats()
        XCTAssertLessThan(after.diskBytes, before.diskBytes / 3, "before \(before.diskBytes), after \(after.diskBytes)")
        XCTAssertEqual(after.entryCount, 40)
        try engine.close()

        let mdbStat = "/usr/bin/mdb_stat"
        guard PosixFiles.exists(mdbStat) else { throw XCTSkip("mdb_stat (lmdb-utils) is not installed") }
        let child = try ChildProcess(executable: mdbStat, arguments: [directory + "/gen-000002"])
        child.waitForExit()
        let output = child.drainLines()
        XCTAssertTrue(output.contains { $0.trimmingCharacters(in: .whitespaces) == "Entries: 40" }, "\(output)")
        print("lmdb: reclaimSpace shrank the files from \(before.diskBytes) to \(after.diskBytes) bytes; mdb_stat: \(output.filter { $0.contains("Entries") })")
    }
}
