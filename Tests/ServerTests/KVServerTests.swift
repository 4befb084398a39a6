import EtcdProto
import EtcdServer
import Foundation
import InMemoryEngine
import Synchronization
import XCTest

final class KVServerTests: XCTestCase {
    func testPutRangeHeadersAndPrevKV() throws {
        let s = try makeServer()
        defer { s.close() }
        let p1 = try s.putSync("foo", "bar")
        XCTAssertEqual(p1.header.revision, 2)   // a new store is at revision 1
        XCTAssertEqual(p1.header.clusterID, 0x1234)
        XCTAssertEqual(p1.header.memberID, 0x5678)
        XCTAssertEqual(p1.header.raftTerm, 2)
        XCTAssertFalse(p1.hasPrevKv)
        let p2 = try s.putSync("foo", "baz", prevKV: true)
        XCTAssertEqual(p2.header.revision, 3)
        XCTAssertEqual(str(p2.prevKv.value), "bar")
        XCTAssertEqual(p2.prevKv.modRevision, 2)

        let r = try s.get("foo")
        XCTAssertEqual(r.count, 1)
        XCTAssertEqual(r.header.revision, 3)
        XCTAssertEqual(r.kvs.first.map { [$0.createRevision, $0.modRevision, $0.version] }, [2, 3, 2])
        XCTAssertEqual(str(r.kvs[0].value), "baz")
    }

    func testPutValidationErrors() throws {
        let s = try makeServer()
        defer { s.close() }
        XCTAssertEtcdError(.emptyKey, try s.putSync("", "x"))
        XCTAssertEqual(EtcdError.emptyKey.code.rawValue, 3)
        XCTAssertEqual(EtcdError.emptyKey.message, "etcdserver: key is not provided")

        var r = Etcdserverpb_PutRequest()
        r.key = d("k")
        r.ignoreValue = true
        r.value = d("v")
        XCTAssertEtcdError(.valueProvided, try s.putSync(r))
        r.value = Data()
        XCTAssertEtcdError(.keyNotFound, try s.putSync(r))   // ignore_value needs an existing key
        try s.putSync("k", "v1", prevKV: false)
        let kept = try s.putSync(r)
        XCTAssertEqual(kept.header.revision, 3)
        XCTAssertEqual(str(try s.get("k").kvs[0].value), "v1")

        XCTAssertEtcdError(.leaseNotFound, try s.putSync("k", "v", lease: 42))
        XCTAssertEqual(EtcdError.leaseNotFound.code, .notFound)
        // Failed writes cost no revision.
        XCTAssertEqual(s.currentRevision, 3)
    }

    func testRequestTooLarge() throws {
        let s = try makeServer { $0.maxRequestBytes = 1024 }
        defer { s.close() }
        XCTAssertEtcdError(.requestTooLarge, try s.putSync("k", String(repeating: "x", count: 2000)))
        XCTAssertNoThrow(try s.putSync("k", String(repeating: "x", count: 500)))
    }

    func testRangeOptions() throws {
        let s = try makeServer()
        defer { s.close() }
        // Revisions: a=2, b=3, c=4, a=5 (a: create 2, mod 5, version 2)
        try s.putSync("a", "3")
        try s.putSync("b", "1")
        try s.putSync("c", "2")
        try s.putSync("a", "9")

        let all = try s.get("\0", end: "\0")
        XCTAssertEqual(all.kvs.map { str($0.key) }, ["a", "b", "c"])

        let limited = try s.get("a", end: "z") { $0.limit = 2 }
        XCTAssertEqual(limited.kvs.map { str($0.key) }, ["a", "b"])
        XCTAssertTrue(limited.more)
        XCTAssertEqual(limited.count, 3)
        let exact = try s.get("a", end: "z") { $0.limit = 3 }
        XCTAssertFalse(exact.more)

        let byModDesc = try s.get("a", end: "z") { $0.sortTarget = .mod; $0.sortOrder = .descend }
        XCTAssertEqual(byModDesc.kvs.map { str($0.key) }, ["a", "c", "b"])
        let byValue = try s.get("a", end: "z") { $0.sortTarget = .value }   // NONE + non-key target = ascend
        XCTAssertEqual(byValue.kvs.map { str($0.value) }, ["1", "2", "9"])
        let keyDesc = try s.get("a", end: "z") { $0.sortOrder = .descend; $0.limit = 2 }
        XCTAssertEqual(keyDesc.kvs.map { str($0.key) }, ["c", "b"])
        XCTAssertTrue(keyDesc.more)

        let minMod = try s.get("a", end: "z") { $0.minModRevision = 4 }
        XCTAssertEqual(minMod.kvs.map { str($0.key) }, ["a", "c"])
        XCTAssertEqual(minMod.count, 3, "count is taken before filters")
        let maxCreate = try s.get("a", end: "z") { $0.maxCreateRevision = 3 }
        XCTAssertEqual(maxCreate.kvs.map { str($0.key) }, ["a", "b"])

        let keysOnly = try s.get("a") { $0.keysOnly = true }
        XCTAssertEqual(keysOnly.kvs.first?.value, Data())
        XCTAssertEqual(keysOnly.kvs.first?.version, 2)
        let countOnly = try s.get("a", end: "z") { $0.countOnly = true }
        XCTAssertEqual(countOnly.kvs.count, 0)
        XCTAssertEqual(countOnly.count, 3)

        let historic = try s.get("a") { $0.revision = 2 }
        XCTAssertEqual(str(historic.kvs[0].value), "3")
        XCTAssertEqual(historic.header.revision, 5)
        XCTAssertEtcdError(.futureRevision, try s.get("a") { $0.revision = 6 })
        XCTAssertEtcdError(.emptyKey, try s.get(""))
    }

    func testTxnCompareAndSwapAndFailureBranchReads() throws {
        let s = try makeServer()
        defer { s.close() }
        let created = try s.putSync("/registry/pods/p1", "v1")   // rev 2
        // Kubernetes' update: compare mod_revision, put on success, read on failure.
        var t = Etcdserverpb_TxnRequest()
        t.compare = [compareMod("/registry/pods/p1", .equal, created.header.revision)]
        t.success = [putOp("/registry/pods/p1", "v2")]
        t.failure = [rangeOp("/registry/pods/p1")]
        let ok = try s.txnSync(t)
        XCTAssertTrue(ok.succeeded)
        XCTAssertEqual(ok.header.revision, 3)
        XCTAssertEqual(ok.responses.first?.responsePut.header.revision, 3)

        // The same txn again: stale revision → failure branch with the current object.
        let stale = try s.txnSync(t)
        XCTAssertFalse(stale.succeeded)
        XCTAssertEqual(stale.header.revision, 3, "a failed compare costs no revision")
        let got = try XCTUnwrap(stale.responses.first?.responseRange)
        XCTAssertEqual(got.kvs.map { str($0.value) }, ["v2"])
        XCTAssertEqual(got.kvs.first?.modRevision, 3)

        // Create-if-absent: compare create_revision == 0 (kube-apiserver's create).
        var create = Etcdserverpb_TxnRequest()
        var c = Etcdserverpb_Compare()
        c.key = d("/registry/pods/p2")
        c.target = .create
        c.result = .equal
        c.createRevision = 0
        create.compare = [c]
        create.success = [putOp("/registry/pods/p2", "x"), putOp("/registry/pods/p3", "y")]
        let made = try s.txnSync(create)
        XCTAssertTrue(made.succeeded)
        XCTAssertEqual(made.header.revision, 4, "one revision for the whole txn")
        let both = try s.get("/registry/pods/p2", end: "/registry/pods/p4")
        XCTAssertEqual(both.kvs.map(\.modRevision), [4, 4])
        XCTAssertFalse(try s.txnSync(create).succeeded)
    }

    func testTxnCompareTargetsAndRanges() throws {
        let s = try makeServer()
        defer { s.close() }
        try s.putSync("k1", "a")
        try s.putSync("k2", "b")
        try s.putSync("k2", "c")
        func cmp(_ key: String, end: String = "", _ target: Etcdserverpb_Compare.CompareTarget,
                 _ result: Etcdserverpb_Compare.CompareResult, _ set: (inout Etcdserverpb_Compare) -> Void) -> Bool {
            var c = Etcdserverpb_Compare()
            c.key = d(key)
            c.rangeEnd = d(end)
            c.target = target
            c.result = result
            set(&c)
            var t = Etcdserverpb_TxnRequest()
            t.compare = [c]
            return (try? s.txnSync(t))?.succeeded ?? false
        }
        XCTAssertTrue(cmp("k2", .version, .equal) { $0.version = 2 })
        XCTAssertTrue(cmp("k2", .version, .greater) { $0.version = 1 })
        XCTAssertTrue(cmp("k1", .value, .less) { $0.value = d("b") })
        XCTAssertTrue(cmp("k1", .value, .notEqual) { $0.value = d("x") })
        XCTAssertFalse(cmp("nope", .value, .notEqual) { $0.value = d("x") }, "VALUE on a missing key is false")
        XCTAssertTrue(cmp("nope", .version, .equal) { $0.version = 0 })
        XCTAssertTrue(cmp("k1", .lease, .equal) { $0.lease = 0 })
        XCTAssertTrue(cmp("k1", .create, .equal) { $0.createRevision = 2 })
        // Over a range: every key must satisfy the compare.
        XCTAssertTrue(cmp("k", end: "l", .mod, .greater) { $0.modRevision = 0 })
        XCTAssertFalse(cmp("k", end: "l", .mod, .greater) { $0.modRevision = 2 })
        XCTAssertTrue(cmp("k", end: "\0", .value, .greater) { $0.value = d("0") })
    }

    func testNestedTxnAndErrors() throws {
        let s = try makeServer { $0.maxTxnOps = 4 }
        defer { s.close() }
        try s.putSync("x", "1")
        var inner = Etcdserverpb_TxnRequest()
        inner.compare = [compareMod("x", .equal, 2)]
        inner.success = [putOp("y", "from-inner"), rangeOp("x")]
        inner.failure = [putOp("z", "no")]
        var outer = Etcdserverpb_TxnRequest()
        outer.compare = [compareMod("x", .greater, 0)]
        var nested = Etcdserverpb_RequestOp()
        nested.requestTxn = inner
        outer.success = [putOp("w", "1"), nested]
        let r = try s.txnSync(outer)
        XCTAssertTrue(r.succeeded)
        XCTAssertEqual(r.header.revision, 3)
        XCTAssertTrue(r.responses[1].responseTxn.succeeded)
        XCTAssertEqual(r.responses[1].responseTxn.responses[1].responseRange.kvs.first.map { str($0.value) }, "1")
        XCTAssertEqual(try s.get("w", end: "z").kvs.map { "\(str($0.key))@\($0.modRevision)" }, ["w@3", "x@2", "y@3"])

        var dup = Etcdserverpb_TxnRequest()
        dup.success = [putOp("a", "1"), putOp("a", "2")]
        XCTAssertEtcdError(.duplicateKey, try s.txnSync(dup))
        dup.success = [deleteOp("a", end: "c"), putOp("b", "2")]
        XCTAssertEtcdError(.duplicateKey, try s.txnSync(dup))
        // The same key in the success and the failure branch is fine.
        dup.success = [putOp("a", "1")]
        dup.failure = [putOp("a", "2")]
        XCTAssertNoThrow(try s.txnSync(dup))

        var big = Etcdserverpb_TxnRequest()
        big.success = (0..<5).map { putOp("k\($0)", "v") }
        XCTAssertEtcdError(.tooManyOps, try s.txnSync(big))
        XCTAssertEqual(EtcdError.tooManyOps.message, "etcdserver: too many operations in txn request")

        var future = Etcdserverpb_TxnRequest()
        var rr = Etcdserverpb_RangeRequest()
        rr.key = d("x")
        rr.revision = 100
        var op = Etcdserverpb_RequestOp()
        op.requestRange = rr
        future.success = [op, putOp("q", "1")]
        XCTAssertEtcdError(.futureRevision, try s.txnSync(future))
        future.success = [op]
        XCTAssertEtcdError(.futureRevision, try s.txnSync(future))  // read-only txns check too
    }

    func testDeleteRangeWithPrevKVs() throws {
        let s = try makeServer()
        defer { s.close() }
        for k in ["a", "b", "c", "d"] { try s.putSync(k, "v-\(k)") }
        var del = Etcdserverpb_DeleteRangeRequest()
        del.key = d("b")
        del.rangeEnd = d("d")
        del.prevKv = true
        let r = try s.deleteSync(del)
        XCTAssertEqual(r.deleted, 2)
        XCTAssertEqual(r.header.revision, 6)
        XCTAssertEqual(r.prevKvs.map { str($0.value) }, ["v-b", "v-c"])
        let none = try s.deleteSync(del)
        XCTAssertEqual(none.deleted, 0)
        XCTAssertEqual(none.header.revision, 6)
        XCTAssertEqual(try s.get("\0", end: "\0").kvs.map { str($0.key) }, ["a", "d"])
    }

    func testCompaction() throws {
        let engine = InMemoryEngine()
        let s = try makeServer(engine)
        for i in 2...11 { try s.putSync("k", "v\(i)") }   // v2 at revision 2 … v11 at 11
        XCTAssertEtcdError(.futureRevision, try s.compactSync(12))
        let c = try s.compactSync(5, physical: true)
        XCTAssertEqual(c.header.revision, 11)
        XCTAssertEqual(engine.count(prefix: [UInt8(ascii: "r")]), 7)   // revisions 5...11
        XCTAssertEtcdError(.compacted, try s.compactSync(5))
        XCTAssertEtcdError(.compacted, try s.get("k") { $0.revision = 4 })
        XCTAssertEqual(str(try s.get("k") { $0.revision = 5 }.kvs[0].value), "v5")
        XCTAssertEqual(EtcdError.compacted.message, "etcdserver: mvcc: required revision has been compacted")
        XCTAssertEqual(EtcdError.compacted.code, .outOfRange)
        s.close()
    }

    func testNewStoreRevisionAndCompactionLikeEtcd() throws {
        let s = try makeServer()
        defer { s.close() }
        // etcd 3.4 on a new data dir: Range answers revision 1; "compaction 1" succeeds and then
        // "compaction 0" fails as compacted.
        XCTAssertEqual(try s.get("a").header.revision, 1)
        XCTAssertEqual(try s.compactSync(1).header.revision, 1)
        XCTAssertEtcdError(.compacted, try s.compactSync(0))
    }

    func testRestartKeepsDataRevisionAndAppliedIndex() throws {
        let engine = InMemoryEngine()
        do {
            let s = try makeServer(engine)
            try s.putSync("a", "1")
            try s.putSync("b", "2")
            XCTAssertEtcdError(.leaseNotFound, try s.putSync("c", "3", lease: 5))
            XCTAssertEqual(s.appliedIndex, 3)
            s.close()
        }
        let s = try makeServer(engine)
        defer { s.close() }
        XCTAssertEqual(s.currentRevision, 3)
        XCTAssertEqual(s.appliedIndex, 3)
        XCTAssertEqual(try s.get("a", end: "z").count, 2)
        XCTAssertEqual(try s.putSync("c", "3").header.revision, 4)
        XCTAssertEqual(s.appliedIndex, 4)
    }

    func testConcurrentPutsShareFsyncs() throws {
        let engine = InMemoryEngine()
        engine.setSyncDelay(microseconds: 2000)
        let s = try makeServer(engine)
        defer { s.close() }
        let n = 200
        let revisions = Mutex<[Int64]>([])
        let group = DispatchGroup()
        let before = engine.syncedWriteCount
        DispatchQueue.concurrentPerform(iterations: n) { i in
            group.enter()
            var r = Etcdserverpb_PutRequest()
            r.key = d("key-\(i)")
            r.value = d("v")
            s.put(r) { result in
                if case .success(let resp) = result { revisions.withLock { $0.append(resp.header.revision) } }
                group.leave()
            }
        }
        XCTAssertEqual(group.wait(timeout: .now() + 30), .success)
        let synced = engine.syncedWriteCount - before
        XCTAssertEqual(revisions.withLock { $0.sorted() }, Array(2...Int64(n + 1)), "each put gets its own revision")
        XCTAssertLessThan(synced, n / 2, "concurrent puts must share synced engine writes")
        XCTAssertEqual(s.groupCommitCount, synced)
        XCTAssertEqual(try s.get("key-", end: "key.").count, Int64(n))
    }

    func testEngineFailureFailsTheGroupAndLosesNothingAcknowledged() throws {
        let engine = InMemoryEngine()
        let s = try makeServer(engine)
        defer { s.close() }
        try s.putSync("a", "1")
        engine.setFailWrites(true)
        XCTAssertThrowsError(try s.putSync("a", "2"))
        engine.setFailWrites(false)
        XCTAssertEqual(str(try s.get("a").kvs[0].value), "1")
        XCTAssertEqual(try s.putSync("a", "3").header.revision, 3)
    }
}
