/// Watchers on resource prefixes that count events until cancelled, and note when each event
/// arrived (by its revision), so the workload can report watch lag: event received minus the
/// writer's acknowledgement of the same revision (`KubeObjectStore.acknowledged`).
final class PrefixWatchers: Sendable {
    struct Received: Sendable {
        var events = 0
        var error: String?
        /// (revision, monotonic nanoseconds when the batch holding it was received).
        var arrivals: [(revision: Int64, at: UInt64)] = []
    }

    private let handles: [WatchHandle]
    private let counters: [Task<Received, Never>]

    init(client: any EtcdClient, prefixes: [String], fromRevision: Int64) async throws {
        var handles: [WatchHandle] = []
        var counters: [Task<Received, Never>] = []
        for prefix in prefixes {
            let p = Array(prefix.utf8)
            let handle = try await client.watch(key: p, rangeEnd: prefixEnd(p), startRevision: fromRevision, prevKV: true)
            handles.append(handle)
            counters.append(Task {
                var received = Received()
                do {
                    for try await batch in handle.events {
                        let now = monotonicNanos()
                        received.events += batch.count
                        for e in batch { received.arrivals.append((e.kv.modRevision, now)) }
                    }
                } catch {
                    received.error = "watch \(prefix): \(error)"
                }
                return received
            })
        }
        self.handles = handles
        self.counters = counters
    }

    /// Cancels every watch; returns the events received, the first watch error, if any, and
    /// the lag of each event whose revision is in `acknowledged` (revision -> monotonic
    /// nanoseconds of the write's response; an event seen before its response counts as 0).
    func stop(graceSeconds: Double, acknowledged: [Int64: UInt64]) async
        -> (events: Int, error: String?, lag: LatencyHistogram) {
        try? await Task.sleep(nanoseconds: UInt64(graceSeconds * 1e9))
        for handle in handles { await handle.cancel() }
        var total = 0
        var firstError: String?
        var lag = LatencyHistogram()
        for counter in counters {
            let received = await counter.value
            total += received.events
            if firstError == nil { firstError = received.error }
            for (revision, at) in received.arrivals {
                guard let ack = acknowledged[revision] else { continue }
                lag.record(nanos: at > ack ? at - ack : 0)
            }
        }
        return (total, firstError, lag)
    }
}
