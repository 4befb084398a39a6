import Foundation
import XCTest
import EngineAPI
import FuzzTargets
import LMDBEngine
import LSMEngine
import ServerFuzzTargets

/// Replays every committed corpus file and reproducer (Tests/FuzzCorpus/<target>/) through the
/// same entry points libFuzzer drives (scripts/fuzz.sh), so a fixed finding stays fixed: every
/// target's, the server targets' included (CI's libFuzzer step builds only the file-format
/// targets; this replay is what runs `server-state` and `connection` in every CI run).
/// Files under Tests/FuzzCorpus/<target>/open/ are reproducers of findings not fixed yet: they
/// are listed, not run (a trap would end the test process).
final class FuzzReplayTests: XCTestCase {
    static let corpusRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("FuzzCorpus")

    func testEveryCorpusFileReplaysCleanly() throws {
        let scratch = TemporaryDirectory()
        var replayed = 0
        for target in FuzzTarget.all {
            let folder = Self.corpusRoot.appendingPathComponent(target.name)
            let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
            XCTAssertFalse(names.isEmpty, "no seed corpus for \(target.name) in \(folder.path)")
            for name in names.sorted() where name != "open" {
                let input = try [UInt8](Data(contentsOf: folder.appendingPathComponent(name)))
                do {
                    try target.run(input, scratch.path)
                } catch {
                    XCTFail("\(target.name)/\(name): \(error)")
                }
                replayed += 1
            }
        }
        XCTAssertGreaterThan(replayed, FuzzTarget.all.count)
    }

    /// Files the engines write now parse through the fuzz targets' verifier with exactly the data
    /// written (the targets' "no error" path is reached by real files, not only by the corpus).
    /// With RUSD_FUZZ_SEED_DIR set, the files are also saved there as corpus seeds.
    func testEngineFilesParseWithTheirData() throws {
        let dir = TemporaryDirectory()
        var options = EngineOptions()
        // Tables of several 4 KiB data blocks: lookups go through the index to the right block
        // (a reader that refused every block past the first once passed this with 1-block tables).
        options.writeBufferBytes = 16 << 10
        var written: [[UInt8]: [UInt8]] = [:]
        let lsm = try LSMEngine.open(directory: dir.path + "/lsm", options: options)
        for i in 0..<300 {
            var b = WriteBatch()
            let key = Array("key-\(i % 120)".utf8), value = Array(repeating: UInt8(i & 0xFF), count: i % 50 * 4)
            if i % 7 == 3 { b.delete(key); written[key] = nil } else { b.put(key, value); written[key] = value }
            try lsm.write(b, sync: false)
        }
        try lsm.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/lsm").sorted()
        let tables = files.filter { $0.hasSuffix(".sst") }
        XCTAssertFalse(tables.isEmpty, "the write buffer should have been flushed to tables")
        let largest = try tables.map { try FileManager.default.attributesOfItem(atPath: dir.path + "/lsm/" + $0)[.size] as? Int ?? 0 }.max() ?? 0
        XCTAssertGreaterThan(largest, 2 * 4096, "no table of several data blocks")
        var newest: [[UInt8]: (UInt64, [UInt8]?)] = [:]
        for t in tables {
            for e in try FileVerifier.readTable(path: dir.path + "/lsm/" + t) {
                let user = Array(e.key.dropLast(8))
                let trailer = e.key.suffix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) }
                if (newest[user]?.0 ?? 0) < trailer >> 8 {
                    newest[user] = (trailer >> 8, trailer & 0xFF == 1 ? e.value : nil)
                }
            }
        }
        for log in files.filter({ $0.hasSuffix(".log") }) {
            for (seq, deletion, key, value) in try FileVerifier.readLog(path: dir.path + "/lsm/" + log)
            where (newest[key]?.0 ?? 0) < seq {
                newest[key] = (seq, deletion ? nil : value)
            }
        }
        XCTAssertEqual(newest.compactMapValues { $0.1 }, written)
        for m in files where m.hasPrefix("MANIFEST-") {
            XCTAssertGreaterThan(try FileVerifier.readManifest(path: dir.path + "/lsm/" + m), 0)
        }
        if let seeds = ProcessInfo.processInfo.environment["RUSD_FUZZ_SEED_DIR"] {
            func save(_ target: String, _ name: String, _ bytes: [UInt8]) throws {
                try FileManager.default.createDirectory(atPath: seeds + "/" + target, withIntermediateDirectories: true)
                try Data(bytes).write(to: URL(fileURLWithPath: seeds + "/" + target + "/" + name))
            }
            for t in tables.prefix(2) {
                let raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir.path + "/lsm/" + t)))
                try save("lsm-table", "seed-" + t, [0] + raw)
            }
            for log in files where log.hasSuffix(".log") {
                let raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir.path + "/lsm/" + log)))
                try save("lsm-wal", "seed-" + log, [0] + raw.prefix(4096))
                try save("record-log", "seed-" + log, [2] + raw.prefix(4096))
            }
            for m in files where m.hasPrefix("MANIFEST-") {
                let raw = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir.path + "/lsm/" + m)))
                try save("lsm-manifest", "seed-" + m, [0] + raw)
            }
        }
    }

    /// The marker files real stores hold (lsm's CURRENT, lmdb's GENERATION, rusd's engine marker)
    /// parse through the functions the `data-dir-marker` target fuzzes, naming files that exist.
    func testDataDirectoryMarkersOfRealStores() throws {
        let dir = TemporaryDirectory()
        var options = EngineOptions()
        options.writeBufferBytes = 16 << 10
        let lsm = try LSMEngine.open(directory: dir.path + "/lsm", options: options)
        var batch = WriteBatch()
        batch.put(Array("k".utf8), Array("v".utf8))
        try lsm.write(batch, sync: true)
        try lsm.close()
        let lmdb = try LMDBEngine.open(directory: dir.path + "/lmdb", options: EngineOptions())
        try lmdb.write(batch, sync: true)
        try lmdb.close()

        let current = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir.path + "/lsm/CURRENT")))
        let manifest = try CurrentFile.manifestName(current, path: dir.path + "/lsm/CURRENT")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.path + "/lsm/" + manifest), manifest)
        let pointer = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir.path + "/lmdb/GENERATION")))
        let generation = try LMDBEngine.generation(pointerFile: pointer, path: dir.path + "/lmdb/GENERATION")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.path + "/lmdb/gen-" + String(format: "%06d", generation)))
        XCTAssertNoThrow(try EngineMarker.check(EngineMarker.contents(for: "lsm"), engine: "lsm", markerPath: "m", dataDirectory: "d"))
        XCTAssertThrowsError(try EngineMarker.check(EngineMarker.contents(for: "lsm"), engine: "lmdb", markerPath: "m", dataDirectory: "d")) {
            XCTAssertEqual("\($0)", "data directory d was written by engine 'lsm', not 'lmdb': start with --engine=lsm, "
                + "or migrate with 'rusd snapshot restore' into a new data dir")
        }
        XCTAssertThrowsError(try CurrentFile.manifestName(Array("MANIFEST-000001/../x\n".utf8), path: "C"))
        XCTAssertThrowsError(try LMDBEngine.generation(pointerFile: Array("gen-0\n".utf8), path: "G"))
        if let seeds = ProcessInfo.processInfo.environment["RUSD_FUZZ_SEED_DIR"] {
            try FileManager.default.createDirectory(atPath: seeds + "/data-dir-marker", withIntermediateDirectories: true)
            try Data([1] + current).write(to: URL(fileURLWithPath: seeds + "/data-dir-marker/seed-lsm-CURRENT"))
            try Data([2] + pointer).write(to: URL(fileURLWithPath: seeds + "/data-dir-marker/seed-lmdb-GENERATION"))
        }
    }

    /// The lmdb engine's write-ahead log: a segment of batches reads back as written.
    func testLMDBWriteAheadLogSegmentReadsBack() throws {
        let dir = TemporaryDirectory()
        var batches: [WriteBatch] = []
        var file: [UInt8] = []
        for i in 0..<20 {
            var b = WriteBatch()
            b.put(Array("k\(i)".utf8), Array(repeating: UInt8(i), count: i * 3))
            if i % 3 == 0 { b.delete(Array("k\(i / 2)".utf8)) }
            batches.append(b)
            WriteAheadLog.appendRecord(b, to: &file)
        }
        let path = dir.path + "/wal-0000000001.log"
        try Data(file).write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try WriteAheadLog.readSegment(path), batches)
        file[file.count / 2] ^= 0xFF
        try Data(file).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try WriteAheadLog.readSegment(path)) { error in
            XCTAssertTrue("\(error)".contains(path) && "\(error)".contains("at offset"), "\(error)")
        }
        if let seeds = ProcessInfo.processInfo.environment["RUSD_FUZZ_SEED_DIR"] {
            try FileManager.default.createDirectory(atPath: seeds + "/lmdb-wal", withIntermediateDirectories: true)
            file[file.count / 2] ^= 0xFF
            try Data([0] + file).write(to: URL(fileURLWithPath: seeds + "/lmdb-wal/seed-segment"))
        }
    }
}

/// A temporary directory removed with the value.
final class TemporaryDirectory {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "/rusd-fuzz-replay-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}
