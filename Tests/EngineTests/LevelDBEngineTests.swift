import XCTest
import EngineAPI
@testable import LevelDBEngine

/// LevelDB-specific behaviour beyond the shared suite: one instance per directory, the write
/// accounting against the real log file, stats after compaction.
final class LevelDBEngineTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = try PosixFiles.makeTemporaryDirectory(prefix: "rusd-leveldb-test") + "/store"
    }

    override func tearDownWithError() throws {
        try PosixFiles.removeTree(PosixFiles.parentDirectory(of: directory))
    }

    func testSecondOpenOfTheSameDirectoryIsRefused() throws {
        let engine = try LevelDBEngine.open(directory: directory)
        defer { try? engine.close() }
        XCTAssertThrowsError(try LevelDBEngine.open(directory: directory)) { error in
            XCTAssertEqual((error as? EngineError)?.kind, .io, "\(error)")
            XCTAssertTrue("\(error)".contains("LOCK"), "\(error)")
        }
    }

    /// The log bytes the engine computes from LevelDB's log format equal the size the file
    /// system reports for the log file (no memtable flush happens in between).
    func testComputedLogBytesMatchTheLogFile() throws {
        let engine = try LevelDBEngine.open(directory: directory)
        defer { try? engine.close() }
        var rng = SplitMix64(seed: 42)
        for b in 0..<200 {
            var batch = WriteBatch()
            for i in 0..<(1 + b % 7) {
                batch.put(Array("k/\(b)/\(i)".utf8), rng.bytes(Int(rng.next() % (b % 50 == 0 ? 100_000 : 900))))
            }
            if b % 3 == 0 { batch.delete(Array("k/\(b - 1)/0".utf8)) }
            try engine.write(batch, sync: false)
        }
        let stats = try engine.stats()
        let logs = try PosixFiles.listFiles(directory).filter { $0.name.hasSuffix(".log") }
        XCTAssertEqual(logs.count, 1)
        let onDisk = logs.reduce(0) { $0 + $1.size }
        XCTAssertEqual(UInt64(stats.details["wal.bytes.written"] ?? 0), onDisk, "computed vs the log file's size")
        XCTAssertEqual(stats.bytesWrittenSinceOpen, onDisk, "no table was written yet")
    }

    func testStatsAfterCompactionCountTables() throws {
        var options = EngineOptions()
        options.writeBufferBytes = 256 << 10
        let engine = try LevelDBEngine.open(directory: directory, options: options)
        defer { try? engine.close() }
        var rng = SplitMix64(seed: 7)
        var user = 0
        for b in 0..<100 {
            var batch = WriteBatch()
            for i in 0..<10 { batch.put(Array("t/\(b % 50)/\(i)".utf8), rng.bytes(2000)) }
            user += batch.byteCount
            try engine.write(batch, sync: false)
        }
        try engine.reclaimSpace()
        let stats = try engine.stats()
        let wal = UInt64(stats.details["wal.bytes.written"] ?? 0)
        let tables = UInt64(stats.details["tables.bytes.written"] ?? 0)
        XCTAssertGreaterThan(wal, UInt64(user))
        XCTAssertGreaterThan(tables, 500_000, "memtable flushes and compactions wrote tables: \(stats.details)")
        XCTAssertEqual(stats.bytesWrittenSinceOpen, wal + tables)
        let filesInLevels = (0..<7).reduce(0.0) { $0 + (stats.details["level\($1).files"] ?? 0) }
        XCTAssertGreaterThan(filesInLevels, 0)
        // 500 live entries of ~2 KB after overwrites: live bytes near 1 MB, not the 2 MB written.
        XCTAssertGreaterThan(stats.liveBytes, 900_000)
        XCTAssertLessThan(stats.liveBytes, 1_500_000)
        print("leveldb: \(user) user bytes -> wal \(wal), tables \(tables), live \(stats.liveBytes), disk \(stats.diskBytes)")
    }

    func testStatsTableParsing() {
        let text = """
                                       Compactions
        Level  Files Size(MB) Time(sec) Read(MB) Write(MB)
        --------------------------------------------------
          0        2        1         0        0         1
          1        5        9         2       12        10

        """
        let rows = LevelDBWriteAccounting.parseStats(text)
        XCTAssertEqual(rows.count, 2)
        XCTAssertEqual(rows.map(\.writeMB), [1, 10])
        XCTAssertEqual(rows.map(\.readMB), [0, 12])
        let tables = LevelDBTableCheck.liveTables("--- level 0 ---\n 5:1234['a' @ 1 : 1 .. 'z' @ 2 : 1]\n--- level 1 ---\n 12:99['\\x00' @ 3 : 1 .. 'b' @ 4 : 1]\n")
        XCTAssertEqual(tables.map(\.number), [5, 12])
        XCTAssertEqual(tables.map(\.size), [1234, 99])
    }
}

extension LevelDBEngineTests {
    func testTableKeyRangeLookup() {
        let sstables = """
        --- level 0 ---
         7:500['a\\x00b' @ 3 : 1 .. 'c' @ 9 : 1]
        --- level 1 ---
         5:1234['b' @ 1 : 1 .. 'z\\xff' @ 2 : 1]
        """
        XCTAssertEqual(LevelDBTableCheck.tables(containing: [0x61, 0x00, 0x63], sstables: sstables), [7])
        XCTAssertEqual(LevelDBTableCheck.tables(containing: Array("bb".utf8), sstables: sstables), [7, 5])
        XCTAssertEqual(LevelDBTableCheck.tables(containing: [0x7A, 0xFF], sstables: sstables), [5])
        XCTAssertEqual(LevelDBTableCheck.tables(containing: [0x7A, 0xFF, 0x00], sstables: sstables), [])
    }
}

extension LevelDBEngineTests {
    /// A creation killed between MANIFEST-000001 and CURRENT (found by the hard-kill check)
    /// leaves a directory LevelDB can create its store in again.
    func testCreationCutShortCanBeRedone() throws {
        try PosixFiles.makeDirectories(directory)
        try PosixFiles.write(Array("partial".utf8), to: directory + "/MANIFEST-000001", create: true)
        try PosixFiles.write([], to: directory + "/LOCK", create: true)
        let engine = try LevelDBEngine.open(directory: directory)
        defer { try? engine.close() }
        var batch = WriteBatch()
        batch.put(Array("k".utf8), Array("v".utf8))
        try engine.write(batch, sync: true)
        XCTAssertEqual(try engine.get(Array("k".utf8)), Array("v".utf8))
    }
}
