import MVCC
import WatchHub
import XCTest

/// Start revisions at the ends of Int64 (issue 17), answered as etcd answers them.
final class WatchStartRevisionExtremesTests: XCTestCase {
    /// etcd reads the history of a negative start revision as an empty range and syncs the
    /// watcher at the current revision; Int64.min is below etcd's "never compacted" (-1), so
    /// that watcher is canceled as compacted, with compact revision -1.
    func testNegativeStartRevisions() throws {
        let f = try HubFixture()
        try f.put("a", "1")
        try f.put("a", "2")
        let (s, sink) = f.session()
        s.create(WatchCreateOptions(key: bytes("a"), startRevision: -1))
        s.create(WatchCreateOptions(key: bytes("a"), startRevision: .min))
        sink.wait("two created, one canceled") { $0.count == 3 }
        let canceled = sink.responses.filter(\.canceled)
        XCTAssertEqual(canceled.map(\.watchID), [1])
        XCTAssertEqual(canceled.first?.compactRevision, -1)
        s.requestProgress()   // answered once the -1 watcher is synced
        sink.wait("progress") { $0.contains { $0.watchID == -1 } }
        let r3 = try f.put("a", "3")
        sink.wait("live event") { !$0.flatMap(\.events).isEmpty }
        XCTAssertEqual(sink.events(of: 0).map(\.kv.modRevision), [r3], "no history before the live event")
    }

    /// A start revision of Int64.max waits for the future without overflowing.
    func testMaximumStartRevisionWaits() throws {
        let f = try HubFixture()
        let (s, sink) = f.session()
        s.create(WatchCreateOptions(key: bytes("a"), startRevision: .max, watchID: .max))
        s.create(WatchCreateOptions(key: bytes("a")))   // automatic ID 0, from now on
        sink.wait("created") { $0.count == 2 }
        XCTAssertEqual(sink.responses.map(\.watchID), [.max, 0])
        try f.put("a", "1")
        sink.wait("event of the other watcher") { !$0.flatMap(\.events).isEmpty }
        XCTAssertTrue(sink.events(of: .max).isEmpty)
        s.cancel(.max)
        sink.wait("canceled") { $0.contains(where: \.canceled) }
    }
}
