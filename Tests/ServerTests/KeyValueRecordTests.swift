import EtcdProto
import SwiftProtobuf
import XCTest
@testable import EtcdSnapshot

/// The restore's in-place mvccpb.KeyValue decoder against SwiftProtobuf (the judge): the same
/// fields for every message SwiftProtobuf writes (unknown fields included), and nil wherever
/// SwiftProtobuf refuses the bytes.
final class KeyValueRecordTests: XCTestCase {
    func decoded(_ bytes: [UInt8]) -> (key: [UInt8], value: [UInt8], c: Int64, m: Int64, v: Int64, l: Int64)? {
        bytes.withUnsafeBytes { b in
            KeyValueRecord(decoding: b).map { r in
                (Array(b[r.key]), Array(b[r.value]), r.createRevision, r.modRevision, r.version, r.lease)
            }
        }
    }

    func testAgreesWithSwiftProtobuf() throws {
        var rng = SystemRandomNumberGenerator()
        for i in 0..<2000 {
            var kv = Mvccpb_KeyValue()
            kv.key = Data((0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
            kv.value = Data((0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) })
            let extremes: [Int64] = [0, 1, -1, .max, .min, 127, 128, 1 << 35]
            func pick() -> Int64 { Bool.random(using: &rng) ? extremes.randomElement(using: &rng)! : Int64.random(in: 0...1_000_000, using: &rng) }
            kv.createRevision = pick(); kv.modRevision = pick(); kv.version = pick(); kv.lease = pick()
            var bytes: [UInt8] = try kv.serializedBytes()
            if i % 3 == 0 {   // unknown fields of each wire type, as a later version might add
                bytes += [0x38, 0x96, 0x01, 0x41] + [UInt8](repeating: 9, count: 8) + [0x4a, 0x02, 0x61, 0x62, 0x55, 1, 2, 3, 4]
            }
            let judge = try Mvccpb_KeyValue(serializedBytes: bytes)
            let got = try XCTUnwrap(decoded(bytes), "message \(i)")
            XCTAssertEqual(got.key, Array(judge.key))
            XCTAssertEqual(got.value, Array(judge.value))
            XCTAssertEqual([got.c, got.m, got.v, got.l], [judge.createRevision, judge.modRevision, judge.version, judge.lease])
        }
    }

    func testRefusesWhatSwiftProtobufRefuses() throws {
        var kv = Mvccpb_KeyValue()
        kv.key = Data("k".utf8)
        kv.value = Data("value".utf8)
        kv.modRevision = 300
        let good: [UInt8] = try kv.serializedBytes()
        var cases: [[UInt8]] = (1..<good.count).map { Array(good[..<$0]) }   // every truncation
        cases.append([0x10] + [UInt8](repeating: 0xff, count: 10) + [0x01])   // varint of 11 bytes
        cases.append([0x0a, 0x05, 0x61])                                       // length past the end
        cases.append([0x08, 0x01])                                             // key (1) as a varint: skipped
        cases.append([0x12, 0x00])                                             // create (2) as bytes: skipped
        cases.append([0x00, 0x01])                                             // field number 0
        cases.append([0x5b, 0x5c])                                             // a group
        cases.append([0x5f])                                                   // wire type 7
        for bytes in cases {
            let judged = (try? Mvccpb_KeyValue(serializedBytes: bytes)) != nil
            if judged { continue }   // a truncation that is still a valid message (field boundary)
            XCTAssertNil(decoded(bytes), "\(bytes) is refused by SwiftProtobuf")
        }
        // Truncations at field boundaries decode to what SwiftProtobuf reads.
        for bytes in cases {
            guard let judge = try? Mvccpb_KeyValue(serializedBytes: bytes) else { continue }
            let got = try XCTUnwrap(decoded(bytes), "\(bytes)")
            XCTAssertEqual(got.key, Array(judge.key))
            XCTAssertEqual(got.m, judge.modRevision)
        }
    }
}
