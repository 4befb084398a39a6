import Foundation
import EngineAPI
import InMemoryEngine
import Synchronization
import XCTest
@testable import MVCC

private func b(_ s: String) -> [UInt8] { Array(s.utf8) }

/// Helpers: one transaction per call, committed at once.
extension StoreWriter {
    @discardableResult
    func putNow(_ k: String, _ v: String, lease: Int64 = 0, index: UInt64 = 0) throws -> Int64 {
        beginTxn()
        try put(b(k), b(v), lease: lease)
        let r = endTxn()
        try commit(appliedIndex: index)
        return r
    }
    @discardableResult
    func deleteNow(_ span: KeySpan) throws -> Int64 {
        beginTxn()
        try deleteRange(span)
        let r = endTxn()
        try commit(appliedIndex: 0)
        return r
    }
}

final class MVCCStoreTests: XCTestCase {
    /// The observer is called through the same number of frames at the 1st and the 3,000th
    /// commit: storing it must not wrap it again on every access (a thunk chain that grew by
    /// two per commit once made every commit slower and leaked memory).
    func testCommitObserverCallDepthDoesNotGrow() throws {
        let store = try MVCCStore(engine: InMemoryEngine())
        let depths = Mutex<[Int]>([])
        store.setObserver { _ in
            let depth = Thread.callStackSymbols.count
            depths.withLock { $0.append(depth) }
        }
        for i in 0..<3_000 { try store.writer.putNow("k\(i % 10)", "v") }
        let seen = depths.withLock { $0 }
        XCTAssertEqual(seen.count, 3_000)
        XCTAssertEqual(seen.first, seen.last, "observer call depth grew from \(seen.first ?? 0) to \(seen.last ?? 0) frames")
    }

    func testRevisionsAndVersionsFollowEtcd() throws {
        let store = try MVCCStore(engine: InMemoryEngine())
        let w = store.writer
        // A new store is at revision 1; the first write gets 2 (as etcd).
        XCTAssertEqual(store.currentRevision, 1)
        XCTAssertEqual(try w.putNow("a", "1"), 2)
        XCTAssertEqual(try w.putNow("a", "2"), 3)
        XCTAssertEqual(try w.putNow("b", "x"), 4)
        XCTAssertEqual(try w.deleteNow(.single(b("a"))), 5)
        XCTAssertEqual(try w.putNow("a", "3"), 6)

        let r = try store.read().range(.range(b("a"), nil))
        XCTAssertEqual(r.revision, 6)
        XCTAssertEqual(r.count, 2)
        // a was re-created at 6: create 6, mod 6, version 1; b: create 4, mod 4, version 1.
        XCTAssertEqual(r.kvs.map { [$0.createRevision, $0.modRevision, $0.version] }, [[6, 6, 1], [4, 4, 1]])
        XCTAssertEqual(r.kvs.map { String(decoding: $0.value, as: UTF8.self) }, ["3", "x"])

        // Historical reads see the old versions; header revision stays current.
        let at3 = try store.read().range(.single(b("a")), RangeOptions(revision: 3))
        XCTAssertEqual(at3.kvs.first?.value, b("2"))
        XCTAssertEqual(at3.kvs.first?.version, 2)
        XCTAssertEqual(at3.kvs.first?.createRevision, 2)
        XCTAssertEqual(at3.revision, 6)
        XCTAssertEqual(try store.read().range(.single(b("a")), RangeOptions(revision: 5)).count, 0)

        XCTAssertThrowsError(try store.read().range(.single(b("a")), RangeOptions(revision: 7))) {
            XCTAssertEqual($0 as? MVCCError, .futureRevision)
        }
        // A delete of nothing costs no revision.
        XCTAssertEqual(try w.deleteNow(.single(b("zzz"))), 6)
    }

    func testRangeSpansLimitAndCount() throws {
        let store = try MVCCStore(engine: InMemoryEngine())
        for k in ["foo", "foo/a", "foo/b", "fop", "g", "a"] { try store.writer.putNow(k, "v") }
        let read = store.read()
        func keys(_ s: KeySpan, _ o: RangeOptions = RangeOptions()) throws -> [String] {
            try read.range(s, o).kvs.map { String(decoding: $0.key, as: UTF8.self) }
        }
        XCTAssertEqual(try keys(.etcd(key: b("foo"), rangeEnd: [])), ["foo"])
        XCTAssertEqual(try keys(.etcd(key: b("foo/"), rangeEnd: b("foo0"))), ["foo/a", "foo/b"])
        XCTAssertEqual(try keys(.etcd(key: b("fop"), rangeEnd: [0])), ["fop", "g"])
        XCTAssertEqual(try keys(.etcd(key: [0], rangeEnd: [0])), ["a", "foo", "foo/a", "foo/b", "fop", "g"])
        XCTAssertEqual(try keys(.etcd(key: b("g"), rangeEnd: b("a"))), [])
        let limited = try read.range(.etcd(key: [0], rangeEnd: [0]), RangeOptions(limit: 2))
        XCTAssertEqual(limited.kvs.count, 2)
        XCTAssertEqual(limited.count, 6)
        let counted = try read.range(.etcd(key: b("f"), rangeEnd: b("g")), RangeOptions(countOnly: true))
        XCTAssertEqual(counted.kvs.count, 0)
        XCTAssertEqual(counted.count, 4)
    }

    func testTransactionSeesOwnWritesAndUsesOneRevision() throws {
        let store = try MVCCStore(engine: InMemoryEngine())
        let w = store.writer
        try w.putNow("x", "0")
        w.beginTxn()
        XCTAssertEqual(w.txnReadRevision, 2)
        try w.put(b("x"), b("1"), lease: 0)
        try w.put(b("y"), b("1"), lease: 7)
        XCTAssertEqual(w.txnReadRevision, 3)
        let inside = try w.range(.range(b("x"), b("z")))
        XCTAssertEqual(inside.kvs.map(\.modRevision), [3, 3])
        XCTAssertEqual(inside.revision, 3)
        // Not visible to readers before commit.
        XCTAssertEqual(try store.read().range(.single(b("y"))).count, 0)
        XCTAssertEqual(w.endTxn(), 3)
        // A read-only transaction costs no revision.
        w.beginTxn()
        XCTAssertEqual(w.endTxn(), 3)
        try w.commit(appliedIndex: 9)
        let y = try XCTUnwrap(store.read().range(.single(b("y"))).kvs.first)
        XCTAssertEqual(y.lease, 7)
        XCTAssertEqual(store.appliedIndex, 9)
        XCTAssertEqual(store.read().latestMetadata(b("x"))?.version, 2)
    }

    func testCompactionDropsHistoryPhysically() throws {
        let engine = InMemoryEngine()
        let store = try MVCCStore(engine: engine)
        let w = store.writer
        try w.putNow("a", "1")      // 2
        try w.putNow("a", "2")      // 3
        try w.putNow("b", "1")      // 4
        try w.deleteNow(.single(b("b"))) // 5
        try w.putNow("a", "3")      // 6
        XCTAssertEqual(engine.count(prefix: [UInt8(ascii: "r")]), 5)

        XCTAssertThrowsError(try w.compact(7)) { XCTAssertEqual($0 as? MVCCError, .futureRevision) }
        let done = expectation(description: "physical compaction")
        try w.compact(5) { done.fulfill() }
        try w.commit(appliedIndex: 0)
        wait(for: [done], timeout: 10)
        // Kept: a@3 (latest <= 5, still visible at 5) and a@6. Dropped: a@2, b@4, tombstone b@5.
        XCTAssertEqual(engine.count(prefix: [UInt8(ascii: "r")]), 2)
        XCTAssertEqual(store.finishedCompactRevision, 5)
        XCTAssertThrowsError(try store.read().range(.single(b("a")), RangeOptions(revision: 4))) {
            XCTAssertEqual($0 as? MVCCError, .compacted)
        }
        XCTAssertEqual(try store.read().range(.single(b("a")), RangeOptions(revision: 5)).kvs.first?.value, b("2"))
        XCTAssertEqual(try store.read().range(.single(b("b")), RangeOptions(revision: 5)).count, 0)
        XCTAssertThrowsError(try w.compact(5)) { XCTAssertEqual($0 as? MVCCError, .compacted) }
        XCTAssertThrowsError(try w.compact(4)) { XCTAssertEqual($0 as? MVCCError, .compacted) }
        store.close()
    }

    func testRestartRebuildsIndexRevisionsAndCompaction() throws {
        let engine = InMemoryEngine()
        do {
            let store = try MVCCStore(engine: engine)
            let w = store.writer
            for i in 0..<300 { try w.putNow("k\(i % 100)", "v\(i)", lease: Int64(i % 3)) }
            try w.deleteNow(.range(b("k5"), b("k6")))  // k5, k50..k59: 11 keys
            try w.compact(151)
            try w.commit(appliedIndex: 42)
            store.close()
        }
        let store = try MVCCStore(engine: engine)
        let r = store.read()
        XCTAssertEqual(r.revision, 302)
        XCTAssertEqual(r.compactRevision, 151)
        XCTAssertEqual(r.appliedIndex, 42)
        let all = try r.range(.range([0], nil))
        XCTAssertEqual(all.count, 89)
        let k7 = try XCTUnwrap(try r.range(.single(b("k7"))).kvs.first)
        // k7 written at revisions 9, 109, 209 (i = 7, 107, 207).
        XCTAssertEqual([k7.createRevision, k7.modRevision, k7.version], [9, 209, 3])
        XCTAssertEqual(k7.value, b("v207"))
        XCTAssertEqual(k7.lease, 207 % 3)
        // History between compaction and now is still readable.
        XCTAssertEqual(try r.range(.single(b("k7")), RangeOptions(revision: 151)).kvs.first?.value, b("v107"))
        XCTAssertThrowsError(try r.range(.single(b("k7")), RangeOptions(revision: 150)))
        // Writes continue from the restored revision.
        XCTAssertEqual(try store.writer.putNow("new", "x"), 303)
    }

    func testFailedCommitRollsBack() throws {
        let engine = InMemoryEngine()
        let store = try MVCCStore(engine: engine)
        try store.writer.putNow("a", "1")
        engine.setFailWrites(true)
        XCTAssertThrowsError(try store.writer.putNow("a", "2"))
        engine.setFailWrites(false)
        XCTAssertEqual(store.writer.currentRevision, 2)
        XCTAssertEqual(try store.read().range(.single(b("a"))).kvs.first?.value, b("1"))
        XCTAssertEqual(try store.writer.putNow("a", "3"), 3)
        XCTAssertEqual(try store.read().range(.single(b("a"))).kvs.first?.version, 2)
    }

    func testObserverGetsEventsWithPreviousVersions() throws {
        let store = try MVCCStore(engine: InMemoryEngine())
        let seen = Mutex<[RevisionEvents]>([])
        store.setObserver { revs in seen.withLock { $0.append(contentsOf: revs) } }
        let w = store.writer
        w.beginTxn(); try w.put(b("a"), b("1"), lease: 0); w.endTxn()
        w.beginTxn(); try w.put(b("a"), b("2"), lease: 0); try w.put(b("b"), b("1"), lease: 0); w.endTxn()
        w.beginTxn(); try w.deleteRange(.range(b("a"), nil)); w.endTxn()
        XCTAssertTrue(seen.withLock { $0.isEmpty }, "events before commit")
        try w.commit(appliedIndex: 3)
        let revs = seen.withLock { $0 }
        XCTAssertEqual(revs.map(\.revision), [2, 3, 4])
        XCTAssertEqual(revs[1].events.map(\.kind), [.put, .put])
        XCTAssertEqual(revs[1].events[0].prevKV?.value, b("1"))
        XCTAssertNil(revs[1].events[1].prevKV)
        XCTAssertEqual(revs[2].events.map(\.kind), [.delete, .delete])
        XCTAssertEqual(revs[2].events.map(\.kv.modRevision), [4, 4])
        XCTAssertEqual(revs[2].events.map { $0.prevKV?.value }, [b("2"), b("1")])

        // The stored history gives back the same events.
        let replay = try store.read().events(from: 2, through: 100, withPrevKV: true)
        XCTAssertEqual(replay.map(\.revision), revs.map(\.revision))
        XCTAssertEqual(replay.map(\.events), revs.map(\.events))
        XCTAssertEqual(try store.read().events(from: 3, through: 3).map(\.events.count), [2])
        XCTAssertEqual(try store.read().events(from: 2, through: 4, limit: 2).map(\.revision), [2, 3])
        try w.compact(3)
        try w.commit(appliedIndex: 4)
        XCTAssertThrowsError(try store.read().events(from: 2, through: 4)) { XCTAssertEqual($0 as? MVCCError, .compacted) }
        XCTAssertEqual(try store.read().events(from: 3, through: 4).map(\.revision), [3, 4])
    }

    func testCorruptRecordIsRefusedNamingTheRevision() throws {
        let engine = InMemoryEngine()
        var batch = WriteBatch()
        batch.put(StorageLayout.revisionKey(Revision(main: 1, sub: 0)), [0x01, 0x02])
        try engine.write(batch, sync: true)
        XCTAssertThrowsError(try MVCCStore(engine: engine)) { e in
            XCTAssertTrue("\(e)".contains("1_0"), "\(e)")
        }
    }
}
