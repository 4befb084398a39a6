import EtcdProto
import EtcdServer
import Foundation
import InMemoryEngine
import XCTest

/// Extreme values in client-controlled numeric fields reach no trap and get etcd's answer
/// (issue 17; the black-box version for every field is Tests/compat/test_field_extremes.py).
final class RequestFieldExtremesTests: XCTestCase {
    func testRangeLimitExtremes() throws {
        let s = try makeServer()
        defer { s.close() }
        for k in ["a", "b", "c"] { try s.putSync(k, "v") }
        // The store is asked for one key more than the limit (to set `more`): Int64.max must not
        // overflow doing so.
        for limit in [Int64.max, Int64.max - 1, 3] {
            let r = try s.get("a", end: "z") { $0.limit = limit }
            XCTAssertEqual(r.kvs.map { str($0.key) }, ["a", "b", "c"], "limit \(limit)")
            XCTAssertFalse(r.more, "limit \(limit)")
            XCTAssertEqual(r.count, 3)
        }
        for limit in [Int64.min, -1, 0] {   // no limit
            XCTAssertEqual(try s.get("a", end: "z") { $0.limit = limit }.kvs.count, 3, "limit \(limit)")
        }
        let one = try s.get("a", end: "z") { $0.limit = 1 }
        XCTAssertEqual(one.kvs.map { str($0.key) }, ["a"])
        XCTAssertTrue(one.more)

        // The same inside a Txn (read-only and writing).
        var op = rangeOp("a", end: "z")
        op.requestRange.limit = .max
        var t = Etcdserverpb_TxnRequest()
        t.success = [op]
        XCTAssertEqual(try s.txnSync(t).responses[0].responseRange.kvs.count, 3)
        t.success.append(putOp("d", "v"))
        XCTAssertEqual(try s.txnSync(t).responses[0].responseRange.kvs.count, 3)
    }

    /// etcd 3.4.23 dies on a sort target outside the enum; etcd 3.5 refuses it, so does rusd.
    /// An unknown sort order sorts nothing (etcd 3.4 and 3.5), whatever the target.
    func testSortOptionsOutsideTheirEnums() throws {
        let s = try makeServer()
        defer { s.close() }
        try s.putSync("b", "1")
        try s.putSync("a", "2")   // mod revision order: b, a
        for target in [-1, 5, Int(Int32.min), Int(Int32.max)] {
            XCTAssertEtcdError(.invalidSortOption, try s.get("a", end: "z") { $0.sortTarget = .UNRECOGNIZED(target) })
            var op = rangeOp("a", end: "z")
            op.requestRange.sortTarget = .UNRECOGNIZED(target)
            var t = Etcdserverpb_TxnRequest()
            t.failure = [op]   // checked in either branch, as etcd's checkTxnRequest does
            XCTAssertEtcdError(.invalidSortOption, try s.txnSync(t))
        }
        XCTAssertEqual(EtcdError.invalidSortOption.code, .invalidArgument)
        XCTAssertEqual(EtcdError.invalidSortOption.message, "etcdserver: invalid sort option")
        for order in [-1, 3, Int(Int32.max)] {
            let r = try s.get("a", end: "z") {
                $0.sortOrder = .UNRECOGNIZED(order)
                $0.sortTarget = .mod
                $0.limit = 1
            }
            XCTAssertEqual(r.kvs.map { str($0.key) }, ["a"], "order \(order)")
            XCTAssertTrue(r.more)
        }
    }

    func testRevisionExtremes() throws {
        let s = try makeServer()
        defer { s.close() }
        try s.putSync("a", "1")
        XCTAssertEtcdError(.futureRevision, try s.get("a") { $0.revision = .max })
        XCTAssertEqual(try s.get("a") { $0.revision = .min }.kvs.count, 1, "a revision <= 0 reads the current one")
        for (min, max) in [(Int64.min, Int64.max), (Int64.max, Int64.min)] {
            let r = try s.get("a") {
                $0.minModRevision = min
                $0.maxModRevision = max
                $0.minCreateRevision = min
                $0.maxCreateRevision = max
            }
            XCTAssertEqual(r.kvs.count, min < max ? 1 : 0)
        }
        XCTAssertEtcdError(.futureRevision, try s.compactSync(.max))
        XCTAssertEtcdError(.compacted, try s.compactSync(.min))
        XCTAssertEtcdError(.compacted, try s.compactSync(-1))
        var c = Etcdserverpb_Compare()
        c.key = d("a")
        c.target = .mod
        c.result = .less
        c.modRevision = .max
        var t = Etcdserverpb_TxnRequest()
        t.compare = [c]
        XCTAssertTrue(try s.txnSync(t).succeeded)
        c.modRevision = .min
        t.compare = [c]
        XCTAssertFalse(try s.txnSync(t).succeeded)
    }

    func testLeaseExtremes() throws {
        let s = try makeServer()
        defer { s.close() }
        XCTAssertEtcdError(.leaseTTLTooLarge, try s.grantSync(ttl: .max, id: 5))
        XCTAssertEqual(try s.grantSync(ttl: .min, id: 6).ttl, 2, "raised to the minimum TTL")
        XCTAssertEqual(try s.grantSync(ttl: Lessor.maxTTL, id: 7).ttl, Lessor.maxTTL)
        for id in [Int64.min, -1, Int64.max] {
            XCTAssertEqual(try s.grantSync(ttl: 60, id: id).id, id)
            var k = Etcdserverpb_LeaseKeepAliveRequest()
            k.id = id
            XCTAssertEqual(s.leaseKeepAlive(k).ttl, 60)
            XCTAssertEqual(s.ttl(id).grantedTtl, 60)
            XCTAssertNoThrow(try s.revokeSync(id))
            XCTAssertEqual(s.ttl(id).ttl, -1)
        }
        // The longest TTL keeps its deadline in range: renewing and asking for it work.
        var k = Etcdserverpb_LeaseKeepAliveRequest()
        k.id = 7
        XCTAssertEqual(s.leaseKeepAlive(k).ttl, Lessor.maxTTL)
        XCTAssertGreaterThan(s.ttl(7).ttl, Lessor.maxTTL - 10)
        XCTAssertEtcdError(.leaseNotFound, try s.putSync("k", "v", lease: .min))
    }
}

extension RequestFieldExtremesTests {
    /// etcd hashes the records below main revision `revision` + 1, so a negative revision
    /// hashes none: CRC-32C of "key" alone, 1084519789 (etcd 3.4.23's answer).
    func testHashKVOfANegativeRevisionHashesNoRecord() throws {
        let s = try makeServer()
        defer { s.close() }
        try s.putSync("a", "1")
        try s.putSync("b", "2")
        for revision in [Int64.min, -1] {
            let h = try s.store.hashKV(revision: revision)
            XCTAssertEqual(h.hash, 1_084_519_789, "revision \(revision)")
            XCTAssertEqual(h.currentRevision, 3)
            XCTAssertEqual(h.compactRevision, -1)
        }
        XCTAssertNotEqual(try s.store.hashKV(revision: 0).hash, 1_084_519_789)
        XCTAssertThrowsError(try s.store.hashKV(revision: .max))
    }
}
