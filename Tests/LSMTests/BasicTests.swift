import XCTest
import EngineAPI
@testable import LSMEngine

final class BasicTests: XCTestCase {
    func testCRC32CKnownVectors() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0..<32).map { UInt8($0) }), 0x46DD_794E)
        // Slicing path equals the bytewise path at every alignment and length.
        let data = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for start in 0..<9 {
            for length in [0, 1, 7, 8, 9, 63, 200] {
                let slice = Array(data[start..<(start + length)])
                var c: UInt32 = 0xFFFF_FFFF
                for b in slice {
                    c ^= UInt32(b)
                    for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
                }
                XCTAssertEqual(CRC32C.checksum(slice), ~c)
            }
        }
    }

    func testPutGetDeleteScanAndReopen() throws {
        let dir = TempDirectory()
        var engine: LSMEngine? = try LSMEngine.open(directory: dir.store, options: smallOptions())
        for i in 0..<2000 {
            try engine!.put(String(format: "key%05d", i), "value\(i)", sync: i % 500 == 0)
        }
        for i in stride(from: 0, to: 2000, by: 3) { try engine!.delete(String(format: "key%05d", i)) }
        XCTAssertEqual(try engine!.string("key00001"), "value1")
        XCTAssertNil(try engine!.string("key00003"))
        let check: (LSMEngine) throws -> Void = { e in
            let view = try e.readView()
            let all = try view.entries(.all)
            XCTAssertEqual(all.count, 2000 - 667)
            XCTAssertEqual(all.first?.key, bytes("key00001"))
            let rev = try view.entries(KeyRange(start: bytes("key00010"), end: bytes("key00020")), reverse: true, limit: 3)
            XCTAssertEqual(rev.map { String(decoding: $0.key, as: UTF8.self) }, ["key00019", "key00017", "key00016"])
            let fwd = try view.entries(.prefix(bytes("key0199")))
            XCTAssertEqual(fwd.map { String(decoding: $0.key, as: UTF8.self) },
                           ["key01990", "key01991", "key01993", "key01994", "key01996", "key01997", "key01999"])
        }
        try check(engine!)
        let stats = try engine!.stats()
        XCTAssertGreaterThan(stats.details["flushes"] ?? 0, 0)
        XCTAssertGreaterThan(stats.bytesWrittenSinceOpen, 0)
        try engine!.close()
        XCTAssertThrowsError(try engine!.get(bytes("key00001"))) { e in
            XCTAssertEqual((e as? EngineError)?.kind, .closed)
        }
        engine = nil
        let reopened = try LSMEngine.open(directory: dir.store, options: smallOptions())
        try check(reopened)
        try reopened.reclaimSpace()
        try check(reopened)
        try reopened.close()
    }

    func testViewIsolation() throws {
        let dir = TempDirectory()
        let engine = try LSMEngine.open(directory: dir.store, options: smallOptions())
        try engine.put("a", "1")
        let view = try engine.readView()
        try engine.put("a", "2")
        try engine.put("b", "1")
        try engine.delete("a")
        for i in 0..<500 { try engine.put("k\(i)", String(repeating: "x", count: 100)) }
        try engine.reclaimSpace()
        XCTAssertEqual(try view.get(bytes("a")), bytes("1"))
        XCTAssertNil(try view.get(bytes("b")))
        XCTAssertEqual(try view.entries(.all).map(\.key), [bytes("a")])
        XCTAssertNil(try engine.get(bytes("a")))
        try engine.close()
        XCTAssertThrowsError(try view.get(bytes("a")))
    }

    func testOpenMissingWithoutCreate() {
        let dir = TempDirectory()
        var o = EngineOptions()
        o.createIfMissing = false
        XCTAssertThrowsError(try LSMEngine.open(directory: dir.store, options: o)) { e in
            XCTAssertEqual((e as? EngineError)?.kind, .notFound)
        }
    }

    func testSecondOpenOfSameDirectoryIsRefused() throws {
        let dir = TempDirectory()
        let engine = try LSMEngine.open(directory: dir.store, options: smallOptions())
        XCTAssertThrowsError(try LSMEngine.open(directory: dir.store, options: smallOptions()))
        try engine.close()
    }
}
