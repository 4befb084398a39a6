import Foundation
import XCTest
import EngineAPI
@testable import LSMEngine

/// Files of another format version are refused with the file and offset named, never misread.
final class FormatVersionTests: XCTestCase {
    func testTableOfAnotherFormatVersionIsRefused() throws {
        let dir = TempDirectory()
        let engine = try LSMEngine.open(directory: dir.store, options: smallOptions())
        for i in 0..<300 { try engine.put(String(format: "key%04d", i), "value") }
        try engine.reclaimSpace()
        try engine.close()
        let table = dir.files(withSuffix: ".sst")[0]
        // Rewrite the footer's version as 1 (format 1 tables) with a valid footer checksum.
        let footer = fileSize(table) - TableFormat.footerSize
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: table)))
        XCTAssertEqual(bytes[footer + 32], UInt8(TableFormat.formatVersion))
        bytes.replaceSubrange((footer + 32)..<(footer + 36), with: [1, 0, 0, 0])
        let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[footer..<(footer + 36)])) }
        withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange((footer + 36)..<(footer + 40), with: $0) }
        try Data(bytes).write(to: URL(fileURLWithPath: table))
        XCTAssertThrowsError(try LSMEngine.open(directory: dir.store, options: smallOptions())) { error in
            guard let e = error as? EngineError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.kind, .corruption)
            XCTAssertEqual(e.path, table)
            XCTAssertTrue(e.message.contains("table format version 1"), e.message)
            XCTAssertTrue(e.message.contains("offset \(footer + 32)"), e.message)
        }
    }

    func testWriteAheadLogRecordOfAnotherFormatIsRefused() throws {
        let dir = TempDirectory()
        let engine = try LSMEngine.open(directory: dir.store, options: smallOptions(writeBuffer: 1 << 20))
        for i in 0..<3 { try engine.put("key\(i)", "value\(i)", sync: true) }
        try engine.close()
        let log = try XCTUnwrap(dir.files(withSuffix: ".log").first)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: log)))
        // The second record, retyped as format 1's batch record (type 1) with a valid checksum.
        let first = Int(bytes[4]) | Int(bytes[5]) << 8 | Int(bytes[6]) << 16 | Int(bytes[7]) << 24
        let second = LogFormat.headerSize + first
        let length = Int(bytes[second + 4]) | Int(bytes[second + 5]) << 8
        XCTAssertEqual(bytes[second + 8], LogFormat.batchRecord)
        bytes[second + 8] = 1
        let crc = bytes.withUnsafeBytes {
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(second + 4)..<(second + LogFormat.headerSize + length)]))
        }
        withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange(second..<(second + 4), with: $0) }
        try Data(bytes).write(to: URL(fileURLWithPath: log))
        XCTAssertThrowsError(try LSMEngine.open(directory: dir.store, options: smallOptions())) { error in
            guard let e = error as? EngineError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.kind, .corruption)
            XCTAssertEqual(e.path, log)
            XCTAssertTrue(e.message.contains("offset \(second)"), e.message)
            XCTAssertTrue(e.message.contains("type 1"), e.message)
        }
        // Nothing was lost: the file is as it was.
        XCTAssertEqual([UInt8](try Data(contentsOf: URL(fileURLWithPath: log))), bytes)
    }

    func testWriteBatchRoundTripsPutsAndDeletes() throws {
        var batch = WriteBatch()
        batch.put([1, 2, 3], [UInt8](repeating: 9, count: 300))
        batch.delete([4])
        batch.put([], [])
        batch.delete([UInt8](repeating: 7, count: 200))
        var out: [UInt8] = []
        WriteBatchCoding.appendRecord(batch, sequence: 1 << 40, to: &out)
        var seen: [(UInt64, ValueKind, [UInt8], [UInt8])] = []
        let length = try out.withUnsafeBytes { buf -> Int in
            let n = try XCTUnwrap(RecordLog.validRecord(buf, at: 0))
            _ = try WriteBatchCoding.decode(UnsafeRawBufferPointer(rebasing: buf[LogFormat.headerSize...]), path: "x", offset: 0) {
                seen.append(($0, $1, Array($2), Array($3)))
            }
            return n
        }
        XCTAssertEqual(length + LogFormat.headerSize, out.count)
        let base: UInt64 = 1 << 40
        let sequences: [UInt64] = [base, base + 1, base + 2, base + 3]
        let kinds: [ValueKind] = [.value, .deletion, .value, .deletion]
        let keys: [[UInt8]] = [[1, 2, 3], [4], [], [UInt8](repeating: 7, count: 200)]
        let values: [[UInt8]] = [[UInt8](repeating: 9, count: 300), [], [], []]
        XCTAssertEqual(seen.map(\.0), sequences)
        XCTAssertEqual(seen.map(\.1), kinds)
        XCTAssertEqual(seen.map(\.2), keys)
        XCTAssertEqual(seen.map(\.3), values)
    }
}
