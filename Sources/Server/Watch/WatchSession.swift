import MVCC
import Synchronization

/// One Watch stream as the hub sees it: the client's requests go in through `create`,
/// `cancel`, `requestProgress`; responses come out, in order, through the session's sink.
///
/// Between the two sits the session's outbox: responses the hub produced and the sink has not
/// taken yet. It is bounded by `WatchHubConfig.sessionBufferBytes` of events: when it is full,
/// the watchers with new events become unsynced and catch up from the store once the outbox
/// drains (control responses always fit). So a slow client costs a bounded amount of memory
/// and never delays writes or other sessions.
///
/// Thread-safety: every method may be called from any thread.
public final class WatchSession: Sendable {
    let hub: WatchHub
    let sink: any WatchSink
    let outbox = Mutex(Outbox())

    struct Outbox {
        var responses: [WatchResponse] = []
        var head = 0
        var eventBytes = 0
        var drainScheduled = false
        /// A watcher went unsynced for lack of room: tell the hub when room frees up.
        var wantsRoom = false
        var closed = false

        var isEmpty: Bool { head == responses.count }
    }

    init(hub: WatchHub, sink: any WatchSink) {
        self.hub = hub
        self.sink = sink
    }

    /// Creates a watcher. The first response about it is its `created` response (or a failed
    /// create: `created` and `canceled` with etcd's reason and watch ID -1).
    public func create(_ options: WatchCreateOptions) {
        hub.submit { $0.create(self, options) }
    }

    /// Cancels watcher `id`; answered with a `canceled` response. Unknown IDs are ignored (etcd).
    public func cancel(_ id: Int64) {
        hub.submit { $0.cancel(self, id) }
    }

    /// etcd's RequestProgress: answered with watch ID -1 and a header revision up to which
    /// every event was delivered to every watcher of the session, once all of them are synced.
    /// Not answered when the session has no watchers (etcd 3.5+).
    public func requestProgress() {
        hub.submit { $0.requestProgress(self) }
    }

    /// Removes every watcher; nothing is sent afterwards. Idempotent.
    public func close() {
        outbox.withLock { o in
            o.closed = true
            o.responses = []
            o.head = 0
            o.eventBytes = 0
        }
        hub.submit { $0.close(self) }
    }

    /// Sends queued responses again after the sink became writable. Call on the executor.
    public func resumeDelivery() {
        drain()
    }

    // MARK: outbox (hub side)

    /// Queues `response`; with `bounded`, only if the outbox has room for its events (it
    /// always has when empty). Returns false when it did not fit (and asks for a room signal).
    func enqueue(_ response: WatchResponse, bounded: Bool) -> Bool {
        let bytes = response.eventList.bytes
        let schedule = outbox.withLock { o -> Bool? in
            if o.closed { return false }
            if bounded && !o.isEmpty && o.eventBytes + bytes > hub.config.sessionBufferBytes {
                o.wantsRoom = true
                return nil
            }
            o.responses.append(response)
            o.eventBytes += bytes
            if o.drainScheduled { return false }
            o.drainScheduled = true
            return true
        }
        guard let schedule else { return false }
        if schedule { sink.execute { self.drain() } }
        return true
    }

    var isClosed: Bool { outbox.withLock { $0.closed } }

    /// Whether the outbox has room for a catch-up batch (at most half full). When it has not,
    /// the hub is signalled (`scheduleCatchUp`) once it has: the outbox is not empty then, so
    /// a drain will come.
    func hasRoomOrSignalLater() -> Bool {
        outbox.withLock { o in
            if o.eventBytes < hub.config.sessionBufferBytes / 2 { return true }
            o.wantsRoom = true
            return false
        }
    }

    /// Sends queued responses while the sink is writable. Runs on the sink's executor.
    private func drain() {
        var sent = 0
        while true {
            // Let the event loop's other work (e.g. write responses) run between batches.
            if sent >= 64 {
                sink.execute { self.drain() }
                return
            }
            guard sink.isWritable else {
                outbox.withLock { $0.drainScheduled = false }
                return
            }
            let (batch, signalRoom) = outbox.withLock { o -> ([WatchResponse], Bool) in
                if o.isEmpty {
                    o.drainScheduled = false
                    o.responses.removeAll(keepingCapacity: o.responses.capacity <= 1024)
                    o.head = 0
                    return ([], false)
                }
                let end = min(o.responses.count, o.head + 32)
                let batch = Array(o.responses[o.head..<end])
                o.head = end
                for r in batch { o.eventBytes -= r.eventList.bytes }
                if o.head > 4096 && o.head * 2 > o.responses.count {
                    o.responses.removeFirst(o.head)
                    o.head = 0
                }
                var signal = false
                if o.wantsRoom && o.eventBytes < hub.config.sessionBufferBytes / 2 {
                    o.wantsRoom = false
                    signal = true
                }
                return (batch, signal)
            }
            if signalRoom { hub.submit { $0.scheduleCatchUp() } }
            if batch.isEmpty { return }
            for r in batch { sink.send(r) }
            sent += batch.count
        }
    }
}
