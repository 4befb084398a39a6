import XCTest
import EngineAPI
import Engines

/// What the `rocksdb` engine promises beyond the shared suite (Sources/Engines/RocksDB/README.md),
/// judged by the files on disk and by the data read back, not by the engine's own stats.
final class RocksDBEngineTests: XCTestCase {
    private var root = ""

    override func setUpWithError() throws {
        root = try PosixFiles.makeTemporaryDirectory(prefix: "rusd-rocksdb")
    }

    override func tearDownWithError() throws {
        try? PosixFiles.removeTree(root)
    }

    private func open(_ dir: String) throws -> any StorageEngine {
        try Engines.registry.open("rocksdb", directory: dir)
    }

    private func files(_ dir: String, suffix: String) throws -> [FileEntry] {
        try PosixFiles.listFiles(dir, recursive: false).filter { $0.name.hasSuffix(suffix) }
    }

    private func value(_ i: Int, size: Int) -> [UInt8] {
        var x = UInt64(i) &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<size).map { _ in
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return UInt8(truncatingIfNeeded: x)
        }
    }

    /// Values of 4 KiB and more are written to blob files, smaller ones stay in tables; after
    /// the large values are overwritten with small ones, reclaimSpace deletes the blob files
    /// (blob GC over every blob file for its duration).
    func testLargeValuesGoToBlobFilesAndReclaimSpaceRemovesTheirGarbage() throws {
        let dir = root + "/blobs"
        let engine = try open(dir)
        defer { try? engine.close() }
        var batch = WriteBatch()
        for i in 0..<200 { batch.put(Array("small/\(i)".utf8), value(i, size: 100)) }
        try engine.write(batch, sync: true)
        try engine.reclaimSpace()
        XCTAssertEqual(try files(dir, suffix: ".blob").count, 0, "100-byte values were written to blob files")

        batch = WriteBatch()
        for i in 0..<100 { batch.put(Array("large/\(i)".utf8), value(i, size: 16 << 10)) }
        try engine.write(batch, sync: true)
        try engine.reclaimSpace()
        let blobBytes = try files(dir, suffix: ".blob").reduce(0) { $0 + $1.size }
        XCTAssertGreaterThanOrEqual(blobBytes, 100 * (16 << 10), "100 values of 16 KiB (incompressible) are not in blob files")
        let tableBytes = try files(dir, suffix: ".sst").reduce(0) { $0 + $1.size }
        // Each large value went to the WAL once and to a blob file once: bytes written count both.
        let written = try engine.stats().bytesWrittenSinceOpen
        XCTAssertGreaterThanOrEqual(written, UInt64(100 * (16 << 10)) + blobBytes, "bytesWrittenSinceOpen misses the flush")
        XCTAssertLessThan(tableBytes, 200 << 10, "the tables hold more than references for the large values")
        for i in stride(from: 0, to: 100, by: 7) {
            XCTAssertEqual(try engine.get(Array("large/\(i)".utf8)), value(i, size: 16 << 10))
        }

        batch = WriteBatch()
        for i in 0..<100 { batch.put(Array("large/\(i)".utf8), value(i + 1000, size: 10)) }
        try engine.write(batch, sync: true)
        try engine.reclaimSpace()
        XCTAssertEqual(try files(dir, suffix: ".blob").map(\.name), [], "blob files of overwritten values survived reclaimSpace")
        let view = try engine.readView()
        let all = try view.entries(.all)
        XCTAssertEqual(all.count, 300)
        for entry in all where entry.key.starts(with: Array("large/".utf8)) {
            let i = Int(String(decoding: entry.key.dropFirst(6), as: UTF8.self)) ?? -1
            XCTAssertEqual(entry.value, value(i + 1000, size: 10))
        }
    }

    /// Acknowledged writes are only in the WAL until a flush. A WAL damaged before its tail is
    /// refused at open (not replayed up to the damage, which would drop acknowledged writes);
    /// a WAL cut inside its last record (the write a crash interrupted) opens with every batch
    /// before it.
    func testDamagedWALIsRefusedAndATornTailIsNot() throws {
        func writeBatches(_ dir: String) throws -> FileEntry {
            let engine = try open(dir)
            for b in 0..<40 {
                var batch = WriteBatch()
                batch.put(Array("w/\(b)".utf8), value(b, size: 1000))
                try engine.write(batch, sync: true)
            }
            try engine.close()
            let logs = try files(dir, suffix: ".log").filter { $0.size > 0 }
            XCTAssertEqual(logs.count, 1, "\(logs.map(\.name))")
            return try XCTUnwrap(logs.first)
        }

        let damaged = root + "/damaged"
        let wal = try writeBatches(damaged)
        let offset = wal.size / 3
        var middle = Array(try PosixFiles.readFile(wal.path)[Int(offset)..<Int(offset) + 8])
        for i in middle.indices { middle[i] ^= 0x5A }
        try PosixFiles.write(middle, to: wal.path, at: offset, sync: true)
        XCTAssertThrowsError(try open(damaged), "a WAL damaged at a third of its length was accepted") { error in
            XCTAssertEqual((error as? EngineError)?.kind, .corruption, "\(error)")
        }

        let torn = root + "/torn"
        let tornWAL = try writeBatches(torn)
        try PosixFiles.truncateFile(tornWAL.path, to: tornWAL.size - 100)
        let engine = try open(torn)
        defer { try? engine.close() }
        for b in 0..<39 {
            XCTAssertEqual(try engine.get(Array("w/\(b)".utf8)), value(b, size: 1000), "batch \(b) lost")
        }
        XCTAssertNil(try engine.get(Array("w/39".utf8)), "the torn last batch was served")
    }

    /// The empty store's preallocated WAL and MANIFEST do not count as data: a 4 MiB limit
    /// accepts 1 MiB of writes and refuses a batch past it.
    func testSizeLimitCountsWrittenBytes() throws {
        var options = EngineOptions()
        options.maxSizeBytes = 4 << 20
        let engine = try Engines.registry.open("rocksdb", directory: root + "/limit", options: options)
        defer { try? engine.close() }
        for b in 0..<16 {
            var batch = WriteBatch()
            batch.put(Array("l/\(b)".utf8), value(b, size: 64 << 10))
            try engine.write(batch, sync: true)
        }
        var huge = WriteBatch()
        huge.put(Array("huge".utf8), value(99, size: 4 << 20))
        XCTAssertThrowsError(try engine.write(huge, sync: true)) { error in
            XCTAssertEqual((error as? EngineError)?.kind, .full, "\(error)")
        }
        XCTAssertNil(try engine.get(Array("huge".utf8)))
    }

    /// Concurrent `sync: true` writers share WAL syncs (RocksDB's write groups): every batch is
    /// there afterwards, and RocksDB's own counter shows fewer syncs than writes.
    func testConcurrentSyncedWritersShareSyncs() throws {
        let engine = try open(root + "/group")
        defer { try? engine.close() }
        let threads = 8, perThread = 40
        try runOnThreads((0..<threads).map { t in
            { @Sendable in
                for i in 0..<perThread {
                    var batch = WriteBatch()
                    batch.put(Array("g/\(t)/\(i)".utf8), Array(repeating: UInt8(t), count: 200))
                    try engine.write(batch, sync: true)
                }
            }
        })
        for t in 0..<threads {
            for i in 0..<perThread {
                XCTAssertEqual(try engine.get(Array("g/\(t)/\(i)".utf8)), Array(repeating: UInt8(t), count: 200))
            }
        }
        let details = try engine.stats().details
        let syncs = try XCTUnwrap(details["wal.syncs"], "no wal.syncs in \(details.keys.sorted())")
        XCTAssertGreaterThan(syncs, 0)
        XCTAssertLessThan(syncs, Double(threads * perThread), "every synced write had a WAL sync of its own")
        print("rocksdb: \(threads * perThread) synced writes from \(threads) threads took \(Int(syncs)) WAL syncs; \(Int(details["writes.group.follower"] ?? 0)) writes joined another's group")
    }
}
