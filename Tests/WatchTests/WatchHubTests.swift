import InMemoryEngine
import MVCC
import Synchronization
import WatchHub
import XCTest

final class WatchHubTests: XCTestCase {
    /// Expected (revision, key, value?) of a write sequence, from the test's own model.
    struct Change: Equatable, CustomStringConvertible {
        var revision: Int64
        var key: String
        var value: String?
        var description: String { "\(revision):\(key)=\(value ?? "<deleted>")" }
    }

    func changes(_ events: [Event]) -> [Change] {
        events.map { Change(revision: $0.kv.modRevision, key: text($0.kv.key), value: $0.kind == .put ? text($0.kv.value) : nil) }
    }

    func testCreatedFirstThenLiveEventsInOrderWithoutGapsOrDuplicates() throws {
        let f = try HubFixture()
        let (s, sink) = f.session()
        let start = f.store.currentRevision
        s.create(WatchCreateOptions(key: bytes("p/"), rangeEnd: bytes("p0")))
        sink.wait("created") { $0.count == 1 }
        XCTAssertEqual(sink.responses[0].created, true)
        XCTAssertEqual(sink.responses[0].watchID, 0)
        XCTAssertEqual(sink.responses[0].headerRevision, start)

        var expected: [Change] = []
        var rev = start
        var rng = SystemRandomNumberGenerator()
        for round in 0..<200 {
            // Groups of 1...4 transactions per commit, some with several keys, some deletes and
            // keys outside the prefix.
            var txns: [[(String, String?)]] = []
            for t in 0..<Int.random(in: 1...4, using: &rng) {
                var ops: [(String, String?)] = []
                var changed: [Change] = []
                for k in 0..<Int.random(in: 1...3, using: &rng) {
                    let key = "p/\((round * 7 + t * 3 + k) % 23)"
                    if ops.contains(where: { $0.0 == key }) { continue }
                    let value: String? = (round + k) % 5 == 0 ? nil : "v\(round).\(t).\(k)"
                    if value == nil && !expected.contains(where: { $0.key == key }) { continue }
                    ops.append((key, value))
                    changed.append(Change(revision: 0, key: key, value: value))
                }
                ops.append(("q/outside", "x"))
                rev += 1
                for var c in changed {
                    // A delete of a key that does not exist now produces no event.
                    if c.value == nil && lastValue(expected, c.key) == nil { continue }
                    c.revision = rev
                    expected.append(c)
                }
                txns.append(ops)
            }
            XCTAssertEqual(try f.commit(txns), rev)
        }
        sink.wait("all events") { self.changes($0.flatMap(\.events)).count >= expected.count }
        XCTAssertEqual(changes(sink.events(of: 0)), expected)
        assertWellFormed(sink.responses, id: 0)
    }

    private func lastValue(_ changes: [Change], _ key: String) -> String? {
        changes.last(where: { $0.key == key })?.value
    }

    /// The writer leaves previous versions out only while the observer does not want them.
    func testWriterLeavesPreviousVersionsOutOnlyWhileUnwanted() throws {
        let store = try MVCCStore(engine: InMemoryEngine())
        let seen = Mutex<[RevisionEvents]>([])
        store.setObserver { revisions in seen.withLock { $0 += revisions } }
        func put(_ value: String) throws {
            store.writer.beginTxn()
            try store.writer.put(bytes("k"), bytes(value), lease: 0)
            _ = store.writer.endTxn()
            try store.writer.commit(appliedIndex: 0)
        }
        try put("v1")
        try put("v2")  // wanted by default
        store.setPreviousValuesWanted(false)
        try put("v3")
        store.setPreviousValuesWanted(true)
        try put("v4")
        let revisions = seen.withLock { $0 }
        XCTAssertEqual(revisions.map(\.previousIncluded), [true, true, false, true])
        XCTAssertEqual(revisions.map { $0.events[0].prevKV.map { text($0.value) } }, [nil, "v1", nil, "v3"])
    }

    /// A prev_kv watcher that registers while a transaction begun without previous versions is
    /// in flight still gets them: the hub fills them in from the store.
    func testPreviousVersionsLeftOutWhileUnwantedAreFilledInForPrevKVWatchers() throws {
        let f = try HubFixture()
        try f.put("k", "v1")
        try f.put("gone", "g1")
        let w = f.store.writer
        w.beginTxn()  // no watcher: this transaction skips previous versions
        try w.put(bytes("k"), bytes("v2"), lease: 0)
        try w.deleteRange(.single(bytes("gone")))
        let (s, sink) = f.session()
        s.create(WatchCreateOptions(key: bytes("a"), rangeEnd: bytes("z"), prevKV: true))
        sink.wait("created") { $0.count == 1 }
        _ = w.endTxn()
        try w.commit(appliedIndex: 0)
        sink.wait("the transaction's events") { $0.flatMap(\.events).count == 2 }
        XCTAssertEqual(sink.events(of: 0).map { $0.prevKV.map { text($0.value) } }, ["v1", "g1"])
        try f.put("k", "v3")  // the watcher is attached: the writer includes them itself
        sink.wait("the next event") { $0.flatMap(\.events).count == 3 }
        XCTAssertEqual(sink.events(of: 0)[2].prevKV.map { text($0.value) }, "v2")
        assertWellFormed(sink.responses, id: 0)
    }

    func testSlowSessionCatchesUpFromTheStoreWithoutBlockingOthers() throws {
        var config = WatchHubConfig()
        config.sessionBufferBytes = 2048
        config.maxRevisionsPerCatchUp = 50
        let f = try HubFixture(config: config)
        let (slow, slowSink) = f.session()
        let (fast, fastSink) = f.session()
        slow.create(WatchCreateOptions(key: bytes("k"), rangeEnd: [0], prevKV: true))
        fast.create(WatchCreateOptions(key: bytes("k"), rangeEnd: [0]))
        slowSink.wait("created") { $0.count == 1 }
        fastSink.wait("created") { $0.count == 1 }
        slowSink.setWritable(false)

        let first = f.store.currentRevision + 1
        let value = String(repeating: "x", count: 100)
        for i in 0..<1000 {
            try f.put("k\(i % 37)", "\(i)-\(value)")
        }
        let last = f.store.currentRevision
        // The fast session got everything while the slow one was stuck.
        fastSink.wait("fast session events") { $0.flatMap(\.events).count == 1000 }
        XCTAssertEqual(fastSink.events(of: 0).map(\.kv.modRevision), Array(first...last))
        f.hub.sync()
        XCTAssertEqual(f.hub.watcherCounts.unsynced, 1, "the slow watcher should have fallen back to catching up")
        XCTAssertEqual(slowSink.responses.count, 1, "nothing is written while the stream is not writable")

        slowSink.setWritable(true)
        slowSink.wait("slow session catches up") { $0.flatMap(\.events).count >= 1000 }
        let events = slowSink.events(of: 0)
        XCTAssertEqual(events.map(\.kv.modRevision), Array(first...last))
        XCTAssertEqual(events.map { text($0.kv.value) }, (0..<1000).map { "\($0)-\(value)" })
        // prev_kv of every update is the previous write of that key.
        for (i, e) in events.enumerated() where i >= 37 {
            XCTAssertEqual(e.prevKV.map { text($0.value) }, "\(i - 37)-\(value)")
        }
        assertWellFormed(slowSink.responses, id: 0)
        f.hub.sync()
        XCTAssertEqual(f.hub.watcherCounts.unsynced, 0)
        XCTAssertEqual(f.hub.watcherCounts.synced, 2)

        // Back in sync: live events flow again.
        try f.put("k1", "after")
        slowSink.wait("live event after catch-up") { $0.flatMap(\.events).count == 1001 }
        XCTAssertEqual(slowSink.events(of: 0).last.map { text($0.kv.value) }, "after")
    }

    func testDrainChecksWritabilityAfterEachMergedResponsesWorth() throws {
        var config = WatchHubConfig()
        config.mergedResponseBytes = 4096
        config.sessionBufferBytes = 1 << 20
        let f = try HubFixture(config: config)
        let (s, sink) = f.stalledSession(WatchCreateOptions(key: bytes("big/"), rangeEnd: bytes("big0")))
        // 3 KiB values: two do not fit in one merged response, so each revision is queued alone.
        let value = String(repeating: "v", count: 3000)
        for i in 0..<20 { try f.put("big/\(i)", value) }
        f.hub.sync()
        // The sink takes one response, then turns unwritable (a high watermark reached).
        sink.setWriteBudget(1)
        sink.setWritable(true)
        sink.wait("the first queued response") { $0.count >= 2 }
        sink.queue.sync {}
        XCTAssertEqual(sink.responses.count, 2, "the drain must stop at the first response past the watermark")
        // Writable again for good: the rest arrives, in order, whole.
        sink.setWriteBudget(nil)
        sink.setWritable(true)
        sink.wait("every event") { $0.flatMap(\.events).count == 20 }
        XCTAssertEqual(sink.events(of: 0).map { text($0.kv.key) }, (0..<20).map { "big/\($0)" })
        assertWellFormed(sink.responses, id: 0)
    }

    func testCatchUpSlicesAListAnEarlierRoundReadWhenItCoversTheWatcher() throws {
        var config = WatchHubConfig()
        config.sessionBufferBytes = 4096   // catch-up lists of at most 2 KiB of events
        let f = try HubFixture(config: config)
        let first = f.store.currentRevision + 1
        let value = String(repeating: "x", count: 50)
        for i in 0..<100 { try f.put("k\(i)", value) }
        let last = f.store.currentRevision
        let (a, sinkA) = f.session()
        a.create(WatchCreateOptions(key: bytes("k"), rangeEnd: [0], startRevision: first))
        sinkA.wait("all history for A") { $0.flatMap(\.events).count == 100 }
        // B starts inside the first list A was given, which A's responses still hold.
        let (b, sinkB) = f.session()
        b.create(WatchCreateOptions(key: bytes("k"), rangeEnd: [0], startRevision: first + 2))
        sinkB.wait("all history for B") { $0.flatMap(\.events).count == 98 }
        let listA = try XCTUnwrap(sinkA.responses.first { !$0.events.isEmpty }?.eventSlices.first?.list)
        let firstB = try XCTUnwrap(sinkB.responses.first { !$0.events.isEmpty }?.eventSlices.first)
        XCTAssertTrue(firstB.list === listA, "B should get a slice of A's list, not a list of its own")
        XCTAssertGreaterThan(listA.events.count, 2)
        XCTAssertEqual(sinkB.events(of: 0).map(\.kv.modRevision), Array((first + 2)...last))
        XCTAssertEqual(sinkA.events(of: 0).map(\.kv.modRevision), Array(first...last))
        assertWellFormed(sinkA.responses, id: 0)
        assertWellFormed(sinkB.responses, id: 0)
    }

    func testLaggingSessionGetsRevisionsMergedButNeverAcrossAProgressResponse() throws {
        let f = try HubFixture()
        // The stream stops taking responses: commits queue up in the session's outbox.
        let (s, sink) = f.stalledSession(WatchCreateOptions(key: bytes("m/"), rangeEnd: bytes("m0")))
        let first = f.store.currentRevision + 1
        for i in 0..<50 { try f.put("m/\(i % 7)", "a\(i)") }
        f.hub.sync()
        s.requestProgress()
        f.hub.sync()
        let progressRevision = f.store.currentRevision
        for i in 0..<30 { try f.put("m/\(i % 5)", "b\(i)") }
        let last = f.store.currentRevision
        f.hub.sync()
        XCTAssertEqual(sink.responses.count, 1, "nothing is written while the stream is not writable")

        sink.setWritable(true)
        sink.wait("all events") { $0.flatMap(\.events).count == 80 }
        let rs = Array(sink.responses.dropFirst())
        // 80 commits arrived while the outbox waited: merged into one response before the
        // progress response and one after it, not 80.
        XCTAssertEqual(rs.count, 3, "responses: \(rs.map { ($0.watchID, $0.events.count, $0.headerRevision) })")
        XCTAssertEqual(rs[0].events.map(\.kv.modRevision), Array(first...progressRevision))
        XCTAssertEqual(rs[1].watchID, -1)
        XCTAssertTrue(rs[1].isProgress)
        XCTAssertEqual(rs[1].headerRevision, progressRevision)
        XCTAssertEqual(rs[2].events.map(\.kv.modRevision), Array(progressRevision + 1...last))
        XCTAssertEqual(rs[2].headerRevision, last)
        XCTAssertEqual(sink.events(of: 0).map { text($0.kv.value) }, (0..<50).map { "a\($0)" } + (0..<30).map { "b\($0)" })
        assertWellFormed(sink.responses, id: 0)
    }

    func testMergedResponsesStayWithinTheMergeLimit() throws {
        var config = WatchHubConfig()
        config.mergedResponseBytes = 1000
        let f = try HubFixture(config: config)
        let (s, sink) = f.stalledSession(WatchCreateOptions(key: bytes("m/"), rangeEnd: bytes("m0")))
        let value = String(repeating: "v", count: 100)
        for i in 0..<40 { try f.put("m/\(i)", value) }
        f.hub.sync()
        sink.setWritable(true)
        sink.wait("all events") { $0.flatMap(\.events).count == 40 }
        let rs = Array(sink.responses.dropFirst())
        XCTAssertGreaterThan(rs.count, 1)
        XCTAssertLessThan(rs.count, 40)
        for r in rs { XCTAssertLessThanOrEqual(r.eventBytes, 1000) }
        assertWellFormed(sink.responses, id: 0)
    }

    func testWatchersReplayingFromDifferentRevisionsGetExactlyTheirOwnHistory() throws {
        var config = WatchHubConfig()
        config.sessionBufferBytes = 4096        // several catch-up rounds
        let f = try HubFixture(config: config)
        let first = f.store.currentRevision + 1
        for i in 0..<300 { try f.put("h/\(i % 13)", "v\(i)") }
        let last = f.store.currentRevision
        let starts: [Int64] = [first, first + 1, first + 37, first + 150, first + 299, last + 1]
        var sessions: [(WatchSession, RecordingSink)] = []
        for start in starts {
            let (s, sink) = f.session()
            s.create(WatchCreateOptions(key: bytes("h/"), rangeEnd: bytes("h0"), startRevision: start, prevKV: start % 2 == 0))
            sessions.append((s, sink))
        }
        try f.put("h/live", "after")
        for (i, (_, sink)) in sessions.enumerated() {
            let start = starts[i]
            let expected = (start <= last ? Array(start...last) : []) + [last + 1]
            sink.wait("history from \(start)") { $0.flatMap(\.events).count >= expected.count }
            XCTAssertEqual(sink.events(of: 0).map(\.kv.modRevision), expected, "watcher from \(start)")
            for e in sink.events(of: 0) where e.kv.modRevision <= last {
                XCTAssertEqual(text(e.kv.value), "v\(e.kv.modRevision - first)")
                XCTAssertEqual(e.prevKV != nil, start % 2 == 0 && e.kv.modRevision - first >= 13)
            }
            assertWellFormed(sink.responses, id: 0)
        }
    }

    func testStartRevisionReplaysHistoryWithPrevKV() throws {
        let f = try HubFixture()
        let r1 = try f.put("a", "1")
        try f.put("b", "1")
        try f.put("a", "2")
        try f.delete("b")
        try f.commit([[("a", "3"), ("c", "1")]])
        let (s, sink) = f.session()
        s.create(WatchCreateOptions(key: bytes("a"), rangeEnd: bytes("z"), startRevision: r1, prevKV: true))
        sink.wait("history") { $0.flatMap(\.events).count == 6 }
        let events = sink.events(of: 0)
        XCTAssertEqual(changes(events), [
            Change(revision: r1, key: "a", value: "1"), Change(revision: r1 + 1, key: "b", value: "1"),
            Change(revision: r1 + 2, key: "a", value: "2"), Change(revision: r1 + 3, key: "b", value: nil),
            Change(revision: r1 + 4, key: "a", value: "3"), Change(revision: r1 + 4, key: "c", value: "1"),
        ])
        XCTAssertEqual(events.map { $0.prevKV.map { text($0.value) } }, [nil, nil, "1", "1", "2", nil])
        XCTAssertEqual(events[3].kv.createRevision, 0)
        // Then live.
        try f.put("a", "4")
        sink.wait("live") { $0.flatMap(\.events).count == 7 }
        assertWellFormed(sink.responses, id: 0)
    }

    func testCompactedStartRevisionCancelsWithCompactRevision() throws {
        let f = try HubFixture()
        let r1 = try f.put("a", "1")
        try f.put("a", "2")
        let r3 = try f.put("a", "3")
        try f.store.writer.compact(r3 - 1)
        try f.store.writer.commit(appliedIndex: 0)
        let (s, sink) = f.session()
        s.create(WatchCreateOptions(key: bytes("a"), startRevision: r1))
        sink.wait("created and canceled") { $0.count == 2 }
        XCTAssertTrue(sink.responses[0].created)
        XCTAssertTrue(sink.responses[1].canceled)
        XCTAssertEqual(sink.responses[1].compactRevision, r3 - 1)
        XCTAssertEqual(sink.responses[1].watchID, 0)
        s.create(WatchCreateOptions(key: bytes("a"), startRevision: r3 - 1))
        sink.wait("replay from the compaction revision") { $0.count == 4 }
        XCTAssertEqual(sink.events(of: 1).map(\.kv.modRevision), [r3 - 1, r3])
    }

    func testFilters() throws {
        let f = try HubFixture()
        let (s, sink) = f.session()
        s.create(WatchCreateOptions(key: bytes("a"), filterPuts: true))
        s.create(WatchCreateOptions(key: bytes("a"), filterDeletes: true))
        sink.wait("created") { $0.count == 2 }
        try f.put("a", "1")
        try f.delete("a")
        try f.put("a", "2")
        sink.wait("events") { $0.flatMap(\.events).count == 3 }
        XCTAssertEqual(sink.events(of: 0).map(\.kind), [.delete])
        XCTAssertEqual(sink.events(of: 1).map { text($0.kv.value) }, ["1", "2"])
    }

    func testDuplicateAndAutomaticIDsAndEmptyRange() throws {
        let f = try HubFixture()
        let (s, sink) = f.session()
        s.create(WatchCreateOptions(key: bytes("a"), watchID: 1))
        s.create(WatchCreateOptions(key: bytes("b"), watchID: 1))
        s.create(WatchCreateOptions(key: bytes("c")))
        s.create(WatchCreateOptions(key: bytes("d")))
        s.create(WatchCreateOptions(key: bytes("e"), rangeEnd: bytes("e")))
        sink.wait("five answers") { $0.count == 5 }
        let r = sink.responses
        XCTAssertEqual(r.map(\.watchID), [1, -1, 0, 2, -1])
        XCTAssertEqual(r[1].cancelReason, "mvcc: duplicate watch ID provided on the WatchStream")
        XCTAssertEqual(r[4].cancelReason, "mvcc: watcher range is empty")
        XCTAssertTrue(r[1].created && r[1].canceled)
    }

    func testCancelStopsEvents() throws {
        let f = try HubFixture()
        let (s, sink) = f.session()
        s.create(WatchCreateOptions(key: bytes("a")))
        s.create(WatchCreateOptions(key: bytes("a")))
        sink.wait("created") { $0.count == 2 }
        s.cancel(0)
        s.cancel(42)
        sink.wait("canceled") { $0.count == 3 }
        XCTAssertTrue(sink.responses[2].canceled)
        try f.put("a", "1")
        sink.wait("event for 1") { $0.count == 4 }
        f.hub.sync()
        usleep(20_000)
        XCTAssertEqual(sink.responses.count, 4)
        XCTAssertEqual(sink.responses[3].watchID, 1)
    }

    func testRequestProgressWaitsUntilEveryWatcherIsSynced() throws {
        var config = WatchHubConfig()
        config.sessionBufferBytes = 512
        let f = try HubFixture(config: config)
        let (s, sink) = f.session()
        s.requestProgress()     // no watchers: no answer (etcd 3.5+)
        s.create(WatchCreateOptions(key: bytes("a")))
        sink.wait("created") { $0.count == 1 }
        try f.put("a", "1")
        try f.put("other", "1")
        s.requestProgress()
        sink.wait("progress") { $0.count == 3 }
        XCTAssertEqual(sink.responses[2].watchID, -1)
        XCTAssertTrue(sink.responses[2].isProgress)
        XCTAssertEqual(sink.responses[2].headerRevision, f.store.currentRevision)

        // A slow watcher: the answer waits until it has caught up, and comes after its events.
        sink.setWritable(false)
        for i in 0..<100 { try f.put("a", "\(i)-" + String(repeating: "y", count: 50)) }
        let last = f.store.currentRevision
        f.hub.sync()
        s.requestProgress()
        f.hub.sync()
        sink.setWritable(true)
        sink.wait("progress after catch-up") { $0.last?.isProgress == true && $0.count > 3 }
        let r = sink.responses
        XCTAssertEqual(r.last?.headerRevision, last)
        XCTAssertEqual(sink.events(of: 0).count, 101)
        XCTAssertEqual(r.filter(\.isProgress).count, 2)
    }

    func testProgressNotifyOnlyForIdleSyncedWatchers() throws {
        var config = WatchHubConfig()
        config.progressNotifyInterval = .milliseconds(100)
        let f = try HubFixture(config: config)
        let (s, sink) = f.session()
        s.create(WatchCreateOptions(key: bytes("a"), progressNotify: true))
        s.create(WatchCreateOptions(key: bytes("b")))
        try f.put("x", "1")
        sink.wait("progress notification") { $0.contains { $0.isProgress } }
        let p = sink.responses.first { $0.isProgress }!
        XCTAssertEqual(p.watchID, 0)
        XCTAssertEqual(p.headerRevision, f.store.currentRevision)
        XCTAssertFalse(sink.responses.contains { $0.isProgress && $0.watchID == 1 })
    }

    func testManyWatchersOnOnePrefixAllGetEveryEvent() throws {
        let f = try HubFixture()
        var sessions: [(WatchSession, RecordingSink)] = []
        for _ in 0..<50 {
            let (s, sink) = f.session()
            for _ in 0..<4 { s.create(WatchCreateOptions(key: bytes("/reg/"), rangeEnd: bytes("/reg0"), prevKV: true)) }
            sessions.append((s, sink))
        }
        f.hub.sync()
        let first = f.store.currentRevision + 1
        for i in 0..<300 { try f.put("/reg/\(i % 10)", "\(i)") }
        let last = f.store.currentRevision
        for (_, sink) in sessions {
            sink.wait("all events") { $0.flatMap(\.events).count == 4 * 300 }
            for id in Int64(0)..<4 {
                XCTAssertEqual(sink.events(of: id).map(\.kv.modRevision), Array(first...last))
                assertWellFormed(sink.responses, id: id)
            }
        }
        for (s, _) in sessions { s.close() }
        f.hub.sync()
        XCTAssertEqual(f.hub.watcherCounts.synced, 0)
    }

    /// Delivery yields to writes only while they queue up (commits of more than one request),
    /// and only until some watcher has lagged for the hold; a burst that outlasted the hold gets
    /// no more priority until a pause in the writes starts a new one.
    func testWritesComeFirstWhileTheyQueueUntilAWatcherLaggedForTheHold() throws {
        var config = WatchHubConfig()
        config.sessionBufferBytes = 2048
        let f = try HubFixture(config: config)
        let hold = Duration.milliseconds(300)
        var n = 0
        func queuedCommit() throws {
            n += 1
            try f.commit([[("k\(n)a", String(repeating: "x", count: 100))], [("k\(n)b", "y")]])
        }
        XCTAssertFalse(f.hub.writesComeFirst(maxHold: hold), "no writes yet")
        try f.put("single", "1")
        XCTAssertFalse(f.hub.writesComeFirst(maxHold: hold), "a commit of one request: nothing queued")
        try queuedCommit()
        XCTAssertTrue(f.hub.writesComeFirst(maxHold: hold))
        XCTAssertEqual(f.hub.committedRevisions, 3)

        // A watcher whose stream is stuck falls behind; until it has lagged for the hold,
        // writes still come first.
        let (session, sink) = f.stalledSession(WatchCreateOptions(key: bytes("k"), rangeEnd: bytes("l")))
        for _ in 0..<40 {
            try queuedCommit()
            f.hub.sync()   // one dispatch per commit: an empty outbox takes any one response
        }
        XCTAssertEqual(f.hub.watcherCounts.unsynced, 1)
        try queuedCommit()
        XCTAssertTrue(f.hub.writesComeFirst(maxHold: hold))
        XCTAssertFalse(f.hub.watchersLagging(for: hold))

        // Past the hold, delivery gets its share again...
        usleep(350_000)
        try queuedCommit()
        XCTAssertTrue(f.hub.watchersLagging(for: hold))
        XCTAssertFalse(f.hub.writesComeFirst(maxHold: hold), "a watcher lagged for the hold")
        // ...for the rest of the burst, even once the watcher caught up.
        sink.setWritable(true)
        let deadline = DispatchTime.now() + 10
        while f.hub.watcherCounts.unsynced > 0 && DispatchTime.now() < deadline { usleep(1000) }
        XCTAssertEqual(f.hub.watcherCounts.unsynced, 0)
        XCTAssertFalse(f.hub.watchersLagging(for: .zero))
        try queuedCommit()
        XCTAssertFalse(f.hub.writesComeFirst(maxHold: hold), "the burst outlasted the hold")

        // A pause in the writes ends the burst; the next one comes first again.
        usleep(60_000)  // > WatchHub.burstGap
        XCTAssertFalse(f.hub.writesQueueing())
        try queuedCommit()
        XCTAssertTrue(f.hub.writesComeFirst(maxHold: hold))
        session.close()
    }

    /// etcd's watch gauges: open streams (with or without watchers), attached watchers, and
    /// unsynced ones; a stream closed twice counts once.
    func testWatchGauges() throws {
        var config = WatchHubConfig()
        config.sessionBufferBytes = 1024
        let f = try HubFixture(config: config)
        func gauges() -> [Int] { f.hub.sync(); let g = f.hub.gaugeValues; return [g.streams, g.watchers, g.slow] }
        let (s, sink) = f.session()
        XCTAssertEqual(gauges(), [1, 0, 0])
        let (stalled, _) = f.stalledSession(WatchCreateOptions(key: bytes("g/"), rangeEnd: bytes("g0")))
        s.create(WatchCreateOptions(key: bytes("g/"), rangeEnd: bytes("g0")))
        s.create(WatchCreateOptions(key: bytes("g/"), rangeEnd: bytes("g0"), watchID: 5))
        s.create(WatchCreateOptions(key: bytes("g/"), rangeEnd: bytes("g0"), watchID: 5))   // duplicate: not created
        sink.wait("created x3") { $0.filter(\.created).count == 3 }
        XCTAssertEqual(gauges(), [2, 3, 0])
        for i in 0..<20 {
            try f.put("g/\(i)", String(repeating: "x", count: 100))
            f.hub.sync()
        }
        XCTAssertEqual(gauges(), [2, 3, 1], "the stalled watcher fell behind")
        s.cancel(5)
        XCTAssertEqual(gauges(), [2, 2, 1])
        stalled.close()
        stalled.close()
        XCTAssertEqual(gauges(), [1, 1, 0])
        s.close()
        XCTAssertEqual(gauges(), [0, 0, 0])
    }
}
