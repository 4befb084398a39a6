import EtcdProto
@testable import EtcdServer
import Foundation
import InMemoryEngine
@testable import MVCC
import SwiftProtobuf
import XCTest

/// `EtcdServer.rangeEncoded` (the response written straight from the records) against the
/// general path: the same request through `range` and swift-protobuf's encoder must give the
/// same bytes, for every request shape the fast path takes. Lists of 64 keys or more read
/// their records with one scan of the revision log (`RecordReader.scanRecords`), the general
/// path with a point read each: the comparison checks the scan too.
final class RangeResponseEncodingTests: XCTestCase {
    func testEncodedRangeMatchesSwiftProtobufByteForByte() throws {
        let s = try makeServer()
        defer { s.close() }
        var grant = Etcdserverpb_LeaseGrantRequest()
        grant.id = 7_000_000_000
        grant.ttl = 600
        let lease = try s.wait { s.leaseGrant(grant, completion: $0) }.id
        for i in 0..<300 {
            var p = Etcdserverpb_PutRequest()
            p.key = d("/registry/configmaps/ns/cm-\(String(format: "%04d", i))")
            p.value = i % 17 == 0 ? Data() : Data((0..<(i % 300)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) })
            if i % 5 == 0 { p.lease = lease }
            _ = try s.putSync(p)
        }
        for i in stride(from: 0, to: 300, by: 10) { _ = try s.putSync("/registry/configmaps/ns/cm-\(String(format: "%04d", i))", "v2") }
        var del = Etcdserverpb_DeleteRangeRequest()
        del.key = d("/registry/configmaps/ns/cm-0150")
        del.rangeEnd = d("/registry/configmaps/ns/cm-0160")
        _ = try s.deleteSync(del)
        _ = try s.putSync("a", "")
        let past = s.currentRevision - 40

        var requests: [(String, Etcdserverpb_RangeRequest)] = []
        func add(_ name: String, _ configure: (inout Etcdserverpb_RangeRequest) -> Void) {
            var r = Etcdserverpb_RangeRequest()
            r.key = d("/registry/configmaps/ns/")
            r.rangeEnd = d("/registry/configmaps/ns0")
            configure(&r)
            requests.append((name, r))
        }
        add("prefix") { _ in }
        add("limit") { $0.limit = 10 }
        add("limit past the end") { $0.limit = 10_000 }
        add("negative limit") { $0.limit = -3 }
        add("keys only") { $0.keysOnly = true }
        add("count only") { $0.countOnly = true }
        add("past revision") { $0.revision = past; $0.limit = 50 }
        add("past revision, every key") { $0.revision = past }
        add("ascend by key") { $0.sortOrder = .ascend; $0.limit = 20 }
        add("single key") { $0.rangeEnd = Data(); $0.key = d("/registry/configmaps/ns/cm-0005") }
        add("single key with empty value") { $0.rangeEnd = Data(); $0.key = d("a") }
        add("missing key") { $0.rangeEnd = Data(); $0.key = d("nope") }
        add("empty range") { $0.key = d("z"); $0.rangeEnd = d("a") }
        add("every key") { $0.key = d("\0"); $0.rangeEnd = d("\0") }
        for (name, r) in requests {
            XCTAssertTrue(RangeExecution.isPlainScan(r), name)
            let expected: [UInt8] = try s.range(r).serializedBytes()
            guard let encoded = try s.rangeEncoded(r) else { return XCTFail("\(name): not encoded") }
            var bytes = [UInt8](repeating: 0xEE, count: encoded.size)
            bytes.withUnsafeMutableBytes { encoded.write(into: $0) }
            XCTAssertEqual(bytes, expected, name)
            if r.countOnly == false && name == "prefix" {
                XCTAssertEqual(try Etcdserverpb_RangeResponse(serializedBytes: bytes).kvs.count, 290)
            }
        }

        // Requests that sort or filter take the general path.
        var sorted = Etcdserverpb_RangeRequest()
        sorted.key = d("a")
        sorted.sortOrder = .descend
        XCTAssertNil(try s.rangeEncoded(sorted))
        var filtered = Etcdserverpb_RangeRequest()
        filtered.key = d("a")
        filtered.minModRevision = 2
        XCTAssertNil(try s.rangeEncoded(filtered))
        var byValue = Etcdserverpb_RangeRequest()
        byValue.key = d("a")
        byValue.sortTarget = .value
        XCTAssertNil(try s.rangeEncoded(byValue))
        // Validation and revision errors are the general path's.
        var empty = Etcdserverpb_RangeRequest()
        XCTAssertEtcdError(.emptyKey, try s.rangeEncoded(empty))
        empty.key = d("a")
        empty.revision = s.currentRevision + 1
        XCTAssertEtcdError(.futureRevision, try s.rangeEncoded(empty))
    }

    /// Negative and extreme field values (10-byte varints), which a store reached through the
    /// API does not produce, encoded as swift-protobuf encodes them.
    func testExtremeFieldValuesMatchSwiftProtobuf() throws {
        let cases: [(Int64, Int64, Int64, Int64)] = [(-1, 1, -5, Int64.min), (Int64.max, Int64.max, 1, -1), (0, 2, 0, 0)]
        var stored: [StoredKeyValue] = []
        var expected = Etcdserverpb_RangeResponse()
        for (i, (create, mod, version, lease)) in cases.enumerated() {
            let key: [UInt8] = i == 2 ? [] : Array("k\(i)".utf8)
            let value = [UInt8](repeating: UInt8(i), count: i * 200)
            let record = RevisionRecord.encodePut(key: key, value: value, createRevision: create, version: version, lease: lease)
            stored.append(try StoredKeyValue(record: record, revision: Revision(main: mod, sub: 0)))
            var kv = Mvccpb_KeyValue()
            kv.key = Data(key)
            kv.value = Data(value)
            kv.createRevision = create
            kv.modRevision = mod
            kv.version = version
            kv.lease = lease
            expected.kvs.append(kv)
        }
        var header = Etcdserverpb_ResponseHeader()
        header.clusterID = UInt64.max
        header.revision = -2
        expected.header = header
        expected.more = true
        expected.count = -9
        let encoded = try EncodedRangeResponse(header: header, kvs: stored, keysOnly: false, more: true, count: -9)
        var bytes = [UInt8](repeating: 0, count: encoded.size)
        bytes.withUnsafeMutableBytes { encoded.write(into: $0) }
        XCTAssertEqual(bytes, try expected.serializedBytes() as [UInt8])
    }
}
