import XCTest
import EngineAPI
@testable import LMDBEngine

/// The lmdb engine's write-ahead log and pending writes: reads that merge pending writes with
/// LMDB, views that keep their state across background commits, recovery of log segments
/// written by hand (torn tail dropped, damage in the middle refused with file and offset).
final class LMDBWriteAheadLogTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = try PosixFiles.makeTemporaryDirectory(prefix: "rusd-lmdb-wal-test") + "/store"
    }

    override func tearDownWithError() throws {
        try PosixFiles.removeTree(PosixFiles.parentDirectory(of: directory))
    }

    private func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// Random puts and deletes, some committed to LMDB (`stats` commits what is pending) and
    /// some only logged, checked after every step against a sorted model with gets and with
    /// scans in both directions, with and without limits, over random ranges.
    func testReadsMergePendingWritesWithLMDB() throws {
        let engine = try LMDBEngine.open(directory: directory)
        defer { try? engine.close() }
        var model: [[UInt8]: [UInt8]] = [:]
        var rng = SystemRandomNumberGenerator()
        func key(_ i: Int) -> [UInt8] { bytes("k/" + String(i, radix: 10).leftPadded(3)) }
        for step in 0..<300 {
            var batch = WriteBatch()
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let k = key(Int.random(in: 0..<120, using: &rng))
                if Int.random(in: 0..<3, using: &rng) == 0 {
                    batch.delete(k)
                    model[k] = nil
                } else {
                    let v = bytes("v\(step)")
                    batch.put(k, v)
                    model[k] = v
                }
            }
            try engine.write(batch, sync: step % 2 == 0)
            if step % 17 == 0 { _ = try engine.stats() }
            if step % 5 != 0 { continue }
            let probe = key(Int.random(in: 0..<120, using: &rng))
            XCTAssertEqual(try engine.get(probe), model[probe], "get \(probe) at step \(step)")
            let sorted = model.keys.sorted { $0.lexicographicallyPrecedes($1) }
            let a = Int.random(in: 0..<130, using: &rng), b = Int.random(in: 0..<130, using: &rng)
            let range = KeyRange(start: key(min(a, b)), end: step % 10 == 0 ? nil : key(max(a, b)))
            let limit: Int? = step % 3 == 0 ? Int.random(in: 1...20, using: &rng) : nil
            let view = try engine.readView()
            for reverse in [false, true] {
                var expected = sorted.filter { range.contains($0) }
                if reverse { expected.reverse() }
                if let limit { expected = Array(expected.prefix(limit)) }
                let got = try view.entries(range, reverse: reverse, limit: limit)
                XCTAssertEqual(got.map(\.key), expected, "scan keys, step \(step), reverse \(reverse), limit \(String(describing: limit))")
                XCTAssertEqual(got.map(\.value), expected.map { model[$0]! }, "scan values, step \(step)")
            }
        }
        XCTAssertEqual(try engine.stats().entryCount, UInt64(model.count))
    }

    /// A view keeps the state it began with while later writes are logged and committed to
    /// LMDB underneath it.
    func testViewKeepsItsStateAcrossCommits() throws {
        let engine = try LMDBEngine.open(directory: directory)
        defer { try? engine.close() }
        var first = WriteBatch()
        first.put(bytes("a"), bytes("1"))
        first.put(bytes("b"), bytes("1"))
        try engine.write(first, sync: true)
        _ = try engine.stats()  // "a", "b" in LMDB
        var second = WriteBatch()
        second.put(bytes("a"), bytes("2"))
        second.put(bytes("c"), bytes("2"))
        try engine.write(second, sync: true)  // pending
        let view = try engine.readView()
        var third = WriteBatch()
        third.delete(bytes("a"))
        third.put(bytes("b"), bytes("3"))
        third.put(bytes("d"), bytes("3"))
        try engine.write(third, sync: true)
        _ = try engine.stats()  // everything in LMDB
        let expected = [KeyValue(key: bytes("a"), value: bytes("2")), KeyValue(key: bytes("b"), value: bytes("1")),
                        KeyValue(key: bytes("c"), value: bytes("2"))]
        XCTAssertEqual(try view.entries(.all), expected)
        XCTAssertEqual(try view.get(bytes("a")), bytes("2"))
        XCTAssertNil(try view.get(bytes("d")))
        XCTAssertEqual(try engine.readView().entries(.all).map(\.key), [bytes("b"), bytes("c"), bytes("d")])
        XCTAssertNil(try engine.get(bytes("a")))
    }

    /// Writes a segment by hand into a closed store: open commits it to LMDB and deletes it;
    /// a torn last record is dropped.
    func testOpenRecoversSegmentsAndDropsATornTail() throws {
        try LMDBEngine.open(directory: directory).close()
        let generation = LMDBEngine.generationPath(directory, 1)
        var records: [UInt8] = []
        var one = WriteBatch()
        one.put(bytes("x"), bytes("1"))
        one.put(bytes("y"), bytes("1"))
        WriteAheadLog.appendRecord(one, to: &records)
        var two = WriteBatch()
        two.delete(bytes("x"))
        two.put(bytes("z"), bytes("2"))
        WriteAheadLog.appendRecord(two, to: &records)
        try PosixFiles.write(records, to: WriteAheadLog.segmentPath(generation, 7), create: true, truncate: true)
        var torn: [UInt8] = []
        var three = WriteBatch()
        three.put(bytes("never-acknowledged"), bytes("3"))
        WriteAheadLog.appendRecord(three, to: &torn)
        var later = WriteBatch()
        later.put(bytes("w"), bytes("4"))
        var laterRecord: [UInt8] = []
        WriteAheadLog.appendRecord(later, to: &laterRecord)
        try PosixFiles.write(laterRecord + Array(torn.dropLast(3)), to: WriteAheadLog.segmentPath(generation, 8),
                             create: true, truncate: true)

        let engine = try LMDBEngine.open(directory: directory)
        defer { try? engine.close() }
        XCTAssertEqual(try engine.readView().entries(.all),
                       [KeyValue(key: bytes("w"), value: bytes("4")), KeyValue(key: bytes("y"), value: bytes("1")),
                        KeyValue(key: bytes("z"), value: bytes("2"))])
        let left = try WriteAheadLog.segments(in: generation).map(\.number)
        XCTAssertEqual(left, [9], "recovered segments are deleted; a new one follows the last")
    }

    /// Damage in the middle of a segment (a valid record follows the bad one) is refused with
    /// the file and offset, and nothing is served from it.
    func testDamageInTheMiddleOfASegmentIsRefused() throws {
        try LMDBEngine.open(directory: directory).close()
        let generation = LMDBEngine.generationPath(directory, 1)
        var records: [UInt8] = []
        for i in 0..<3 {
            var batch = WriteBatch()
            batch.put(bytes("k\(i)"), [UInt8](repeating: UInt8(i), count: 100))
            WriteAheadLog.appendRecord(batch, to: &records)
        }
        let secondRecord = records.count / 3
        records[secondRecord + 20] ^= 0x40
        let path = WriteAheadLog.segmentPath(generation, 1)
        try PosixFiles.write(records, to: path, create: true, truncate: true)
        XCTAssertThrowsError(try LMDBEngine.open(directory: directory)) { error in
            guard let e = error as? EngineError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.kind, .corruption, "\(e)")
            XCTAssertEqual(e.path, path)
            XCTAssertTrue(e.message.contains("offset \(secondRecord)"), e.message)
        }
        XCTAssertTrue(PosixFiles.exists(path), "a damaged segment is kept for inspection")
    }

    func testBatchCodingRoundTrips() throws {
        var batch = WriteBatch()
        batch.put(bytes("a"), [])
        batch.put([UInt8](repeating: 0xFF, count: 300), [UInt8](repeating: 0, count: 70_000))
        batch.delete(bytes("gone"))
        var record: [UInt8] = []
        WriteAheadLog.appendRecord(batch, to: &record)
        let decoded = record.withUnsafeBytes { WriteAheadLog.decode(UnsafeRawBufferPointer(rebasing: $0[RecordLog.headerSize...])) }
        XCTAssertEqual(decoded, batch)
        let truncated = record.withUnsafeBytes { WriteAheadLog.decode(UnsafeRawBufferPointer(rebasing: $0[RecordLog.headerSize..<($0.count - 1)])) }
        XCTAssertNil(truncated)
    }
}

private extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
