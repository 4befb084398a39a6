import Foundation
import XCTest
import EngineAPI
@testable import LSMEngine

/// Torn WAL tails, corruption in the middle of the WAL, corrupted table blocks.
final class RecoveryTests: XCTestCase {
    /// Writes `count` synced single-put batches and closes without flushing (WAL only).
    private func writeLog(_ dir: TempDirectory, count: Int) throws -> String {
        let engine = try LSMEngine.open(directory: dir.store, options: smallOptions(writeBuffer: 1 << 20))
        for i in 0..<count { try engine.put("key\(i)", "value\(i)", sync: true) }
        try engine.close()
        let logs = dir.files(withSuffix: ".log")
        XCTAssertEqual(logs.count, 1)
        return logs[0]
    }

    /// Offsets of the records of a log (header: crc u32, length u32, type u8 = 2 for batches).
    private func recordOffsets(_ path: String) throws -> [Int] {
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var offsets: [Int] = []
        var o = 0
        while o + 9 <= data.count && data[o + 8] == LogFormat.batchRecord {
            offsets.append(o)
            let len = Int(data[o + 4]) | Int(data[o + 5]) << 8 | Int(data[o + 6]) << 16 | Int(data[o + 7]) << 24
            o += 9 + len
        }
        return offsets
    }

    func testTornTailIsDroppedCleanly() throws {
        for cut in [1, 5, 9, 12] { // inside the header, at its end, inside the payload
            let dir = TempDirectory()
            let log = try writeLog(dir, count: 10)
            let offsets = try recordOffsets(log)
            XCTAssertEqual(offsets.count, 10)
            try truncate(log, to: offsets[9] + cut)
            let engine = try LSMEngine.open(directory: dir.store, options: smallOptions())
            for i in 0..<9 { XCTAssertEqual(try engine.string("key\(i)"), "value\(i)", "cut \(cut)") }
            XCTAssertNil(try engine.string("key9"), "cut \(cut)")
            // The store keeps working and the recovered data survives another reopen.
            try engine.put("after", "crash", sync: true)
            try engine.close()
            let again = try LSMEngine.open(directory: dir.store, options: smallOptions())
            XCTAssertEqual(try again.string("key8"), "value8")
            XCTAssertEqual(try again.string("after"), "crash")
            try again.close()
        }
    }

    func testZeroFilledAndGarbageTailIsTorn() throws {
        let dir = TempDirectory()
        let log = try writeLog(dir, count: 5)
        let offsets = try recordOffsets(log)
        // A last record whose payload never reached the disk (zeros where its bytes should be).
        let end = offsets.count == 5 ? try Data(contentsOf: URL(fileURLWithPath: log)).count : 0
        _ = end
        try corrupt(log, at: offsets[4] + 12, count: 4)
        try append(log, [UInt8](repeating: 0, count: 4096))
        let engine = try LSMEngine.open(directory: dir.store, options: smallOptions())
        XCTAssertEqual(try engine.string("key3"), "value3")
        XCTAssertNil(try engine.string("key4"))
        try engine.close()
    }

    func testCorruptionInTheMiddleIsRefusedWithFileAndOffset() throws {
        let dir = TempDirectory()
        let log = try writeLog(dir, count: 10)
        let offsets = try recordOffsets(log)
        try corrupt(log, at: offsets[4] + 14) // a payload byte of record 5 of 10
        XCTAssertThrowsError(try LSMEngine.open(directory: dir.store, options: smallOptions())) { error in
            guard let e = error as? EngineError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.kind, .corruption)
            XCTAssertEqual(e.path, log)
            XCTAssertTrue(e.message.contains("offset \(offsets[4])"), e.message)
        }
        // Refusing must not destroy the evidence: the log is still there, unchanged.
        XCTAssertEqual(dir.files(withSuffix: ".log"), [log])
    }

    func testCorruptedTableBlockIsDetectedNotServed() throws {
        let dir = TempDirectory()
        var engine: LSMEngine? = try LSMEngine.open(directory: dir.store, options: smallOptions())
        for i in 0..<300 { try engine!.put(String(format: "key%04d", i), String(repeating: "v\(i)", count: 20)) }
        try engine!.reclaimSpace()
        try engine!.close()
        engine = nil
        let tables = dir.files(withSuffix: ".sst")
        XCTAssertFalse(tables.isEmpty)
        // Flip one byte inside the first data block of the first table.
        try corrupt(tables[0], at: 100)
        let reopened = try LSMEngine.open(directory: dir.store, options: smallOptions())
        XCTAssertThrowsError(try reopened.get(bytes("key0000"))) { error in
            guard let e = error as? EngineError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.kind, .corruption)
            XCTAssertEqual(e.path, tables[0])
            XCTAssertTrue(e.message.contains("offset 0"), e.message)
        }
        XCTAssertThrowsError(try reopened.readView().entries(.all)) { error in
            XCTAssertEqual((error as? EngineError)?.kind, .corruption)
        }
        XCTAssertThrowsError(try reopened.readView().entries(.all, reverse: true)) { error in
            XCTAssertEqual((error as? EngineError)?.kind, .corruption)
        }
        try reopened.close()
    }

    func testCorruptedTableFooterRefusedAtOpen() throws {
        let dir = TempDirectory()
        var engine: LSMEngine? = try LSMEngine.open(directory: dir.store, options: smallOptions())
        for i in 0..<300 { try engine!.put(String(format: "key%04d", i), "value") }
        try engine!.reclaimSpace()
        try engine!.close()
        engine = nil
        let table = dir.files(withSuffix: ".sst")[0]
        try corrupt(table, at: fileSize(table) - 20)
        XCTAssertThrowsError(try LSMEngine.open(directory: dir.store, options: smallOptions())) { error in
            guard let e = error as? EngineError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.kind, .corruption)
            XCTAssertEqual(e.path, table)
        }
    }
}
