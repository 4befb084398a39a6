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
/// While a watcher's event response waits in the outbox, later events for that watcher are
/// merged into it (whole revisions, up to `WatchHubConfig.mergedResponseBytes`), unless a
/// control or progress response was queued after it. A session that keeps up gets one
/// response per commit; one that lags gets fewer, larger responses, so the cost of delivery
/// per event falls as the load rises instead of queueing one response per commit per watcher.
///
/// Thread-safety: every method may be called from any thread.
public final class WatchSession: Sendable {
    let hub: WatchHub
    let sink: any WatchSink
    let outbox = Mutex(Outbox())

    struct Outbox {
        var responses: [WatchResponse] = []
        var head = 0
        /// Responses removed from the front of `responses` so far: `base + i` is the position
        /// of `responses[i]` for the life of the session.
        var base = 0
        /// Per watcher, the position of its last queued event response, which later events
        /// may be merged into while it is unsent and at or after `mergeFloor`.
        var lastEventResponse: [Int64: Int] = [:]
        /// Responses before this position take no more events (a control or progress response
        /// follows them, and must keep its place after their events).
        var mergeFloor = 0
        var eventBytes = 0
        var drainScheduled = false
        /// A watcher went unsynced for lack of room: tell the hub when room frees up.
        var wantsRoom = false
        var closed = false

        var isEmpty: Bool { head == responses.count }
        var end: Int { base + responses.count }

        /// Merges `r`'s events into the watcher's unsent event response if allowed; returns
        /// false when `r` must be queued on its own.
        mutating func merge(_ r: WatchResponse, limit: Int) -> Bool {
            guard r.carriesEventsOnly, let position = lastEventResponse[r.watchID],
                  position >= base + head, position >= mergeFloor else { return false }
            let i = position - base
            guard responses[i].eventBytes + r.eventBytes <= limit else { return false }
            responses[i].appendEvents(of: r)
            responses[i].headerRevision = max(responses[i].headerRevision, r.headerRevision)
            return true
        }

        mutating func append(_ r: WatchResponse) {
            if r.carriesEventsOnly {
                lastEventResponse[r.watchID] = end
            } else {
                mergeFloor = end + 1
            }
            responses.append(r)
        }
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

    /// Refuses a create the API layer denied (etcd's auth check of a watch): answered in order
    /// with the other responses, as a failed create (`created` and `canceled`, watch ID -1,
    /// `reason` as cancel reason).
    public func refuseCreate(reason: String) {
        hub.submit { $0.refuseCreate(self, reason: reason) }
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
        let first = outbox.withLock { o -> Bool in
            let first = !o.closed
            o.closed = true
            o.base += o.responses.count
            o.responses = []
            o.head = 0
            o.lastEventResponse = [:]
            o.eventBytes = 0
            return first
        }
        if first { hub.streamClosed() }
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
        let bytes = response.eventBytes
        let mergeLimit = hub.config.mergedResponseBytes
        let schedule = outbox.withLock { o -> Bool? in
            if o.closed { return false }
            if bounded && !o.isEmpty && o.eventBytes + bytes > hub.config.sessionBufferBytes {
                o.wantsRoom = true
                return nil
            }
            if !o.merge(response, limit: mergeLimit) { o.append(response) }
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
            if sent >= 16 {
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
                    o.base += o.responses.count
                    o.responses.removeAll(keepingCapacity: o.responses.capacity <= 1024)
                    o.head = 0
                    o.lastEventResponse.removeAll(keepingCapacity: o.lastEventResponse.count <= 64)
                    return ([], false)
                }
                // At most 16 responses and one merged response's worth of events per check of
                // the sink's writability: a batch of large responses sent unchecked would overrun
                // the transport's high watermark by up to 16 of them, per stream.
                var end = o.head + 1
                var bytes = o.responses[o.head].eventBytes
                while end < o.responses.count && end - o.head < 16
                        && bytes + o.responses[end].eventBytes <= hub.config.mergedResponseBytes {
                    bytes += o.responses[end].eventBytes
                    end += 1
                }
                let batch = Array(o.responses[o.head..<end])
                o.head = end
                for r in batch { o.eventBytes -= r.eventBytes }
                if o.head > 4096 && o.head * 2 > o.responses.count {
                    o.responses.removeFirst(o.head)
                    o.base += o.head
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
