/// Watchers on resource prefixes that count events until cancelled.
final class PrefixWatchers: Sendable {
    private let handles: [WatchHandle]
    private let counters: [Task<(events: Int, lastRevision: Int64), Error>]

    init(client: any EtcdClient, prefixes: [String], fromRevision: Int64) async throws {
        var handles: [WatchHandle] = []
        var counters: [Task<(events: Int, lastRevision: Int64), Error>] = []
        for prefix in prefixes {
            let p = Array(prefix.utf8)
            let handle = try await client.watch(key: p, rangeEnd: prefixEnd(p), startRevision: fromRevision, prevKV: true)
            handles.append(handle)
            counters.append(Task {
                var events = 0
                var last: Int64 = 0
                for try await batch in handle.events {
                    events += batch.count
                    if let rev = batch.last?.kv.modRevision { last = rev }
                }
                return (events, last)
            })
        }
        self.handles = handles
        self.counters = counters
    }

    /// Cancels every watch and returns the number of events received.
    func stop(graceSeconds: Double) async -> Int {
        try? await Task.sleep(nanoseconds: UInt64(graceSeconds * 1e9))
        for handle in handles { await handle.cancel() }
        var total = 0
        for counter in counters {
            if let (events, _) = try? await counter.value { total += events }
        }
        return total
    }
}
