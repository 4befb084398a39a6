import Dispatch
import InMemoryEngine
import MVCC
import Synchronization
import WatchHub
import XCTest

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

/// A sink that records responses, runs work on its own serial queue, and can be made
/// unwritable to play a slow client.
final class RecordingSink: WatchSink {
    let queue = DispatchQueue(label: "test-sink")
    private let state = Mutex<(responses: [WatchResponse], writable: Bool, budget: Int?)>(([], true, nil))
    private let sessionBox = Mutex<WatchSession?>(nil)
    var session: WatchSession? {
        get { sessionBox.withLock { $0 } }
        set { sessionBox.withLock { $0 = newValue } }
    }

    func execute(_ work: @escaping @Sendable () -> Void) { queue.async(execute: work) }

    var isWritable: Bool { state.withLock { $0.writable } }

    func send(_ response: WatchResponse) {
        dispatchPrecondition(condition: .onQueue(queue))
        state.withLock { s in
            s.responses.append(response)
            // Like the transport's high watermark: unwritable once the budget is spent.
            if let budget = s.budget {
                s.budget = budget - response.eventBytes
                if budget - response.eventBytes <= 0 { s.writable = false }
            }
        }
    }

    /// Makes the sink turn unwritable once responses of `eventBytes` in all were sent to it.
    func setWriteBudget(_ eventBytes: Int?) {
        state.withLock { $0.budget = eventBytes }
    }

    var responses: [WatchResponse] { state.withLock { $0.responses } }

    /// Sets writability; when it turns true, resumes delivery on the sink's queue (as the
    /// transport's writability callback does).
    func setWritable(_ writable: Bool) {
        state.withLock { $0.writable = writable }
        if writable, let session { queue.async { session.resumeDelivery() } }
    }

    /// Waits until `condition` holds for the recorded responses (or fails after `timeout`).
    func wait(_ what: String, timeout: Double = 10, file: StaticString = #filePath, line: UInt = #line,
              _ condition: ([WatchResponse]) -> Bool) {
        let deadline = DispatchTime.now() + timeout
        while DispatchTime.now() < deadline {
            if condition(responses) { return }
            usleep(2000)
        }
        XCTFail("timed out waiting for \(what); got \(responses.count) responses", file: file, line: line)
    }

    /// Events of watcher `id`, in the order received.
    func events(of id: Int64) -> [Event] {
        responses.filter { $0.watchID == id }.flatMap(\.events)
    }
}

/// A store on an in-memory engine with a hub, plus helpers to write to it.
final class HubFixture {
    let store: MVCCStore
    let hub: WatchHub

    init(config: WatchHubConfig = WatchHubConfig()) throws {
        store = try MVCCStore(engine: InMemoryEngine())
        hub = WatchHub(store: store, config: config)
    }

    func session() -> (WatchSession, RecordingSink) {
        let sink = RecordingSink()
        let s = hub.openSession(sink)
        sink.session = s
        return (s, sink)
    }

    /// A session with one watcher, its `created` response received, whose stream then stops
    /// taking responses (a client that stopped reading).
    func stalledSession(_ options: WatchCreateOptions) -> (WatchSession, RecordingSink) {
        let (s, sink) = session()
        s.create(options)
        sink.wait("created") { $0.count == 1 }
        sink.setWritable(false)
        return (s, sink)
    }

    /// One transaction per element of `txns` (each a list of puts, `nil` value = delete), all
    /// committed as one group. Returns the last revision.
    @discardableResult
    func commit(_ txns: [[(String, String?)]]) throws -> Int64 {
        let w = store.writer
        var rev: Int64 = 0
        for ops in txns {
            w.beginTxn()
            for (k, v) in ops {
                if let v {
                    try w.put(bytes(k), bytes(v), lease: 0)
                } else {
                    try w.deleteRange(.single(bytes(k)))
                }
            }
            rev = w.endTxn()
        }
        try w.commit(appliedIndex: 0)
        return rev
    }

    @discardableResult
    func put(_ k: String, _ v: String) throws -> Int64 { try commit([[(k, v)]]) }
    @discardableResult
    func delete(_ k: String) throws -> Int64 { try commit([[(k, nil)]]) }
}

/// Checks the watch guarantees on one watcher's responses: events strictly in (revision, sub)
/// order with no duplicates, each revision's events inside one response, and header revisions
/// not below their events.
func assertWellFormed(_ responses: [WatchResponse], id: Int64, file: StaticString = #filePath, line: UInt = #line) {
    var last: Int64 = 0
    var seenRevisions = Set<Int64>()
    for r in responses where r.watchID == id && !r.events.isEmpty {
        var inThis = Set<Int64>()
        for e in r.events {
            XCTAssertGreaterThanOrEqual(e.kv.modRevision, last, "events out of order", file: file, line: line)
            last = e.kv.modRevision
            inThis.insert(e.kv.modRevision)
        }
        XCTAssertTrue(seenRevisions.isDisjoint(with: inThis), "a revision split across responses", file: file, line: line)
        seenRevisions.formUnion(inThis)
        XCTAssertGreaterThanOrEqual(r.headerRevision, last, "header below its events", file: file, line: line)
    }
}
