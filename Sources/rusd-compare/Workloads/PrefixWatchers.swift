/// Watchers on resource prefixes that count events until cancelled.
final class PrefixWatchers: Sendable {
    private let handles: [WatchHandle]
    private let counters: [Task<(events: Int, error: String?), Never>]

    init(client: any EtcdClient, prefixes: [String], fromRevision: Int64) async throws {
        var handles: [WatchHandle] = []
        var counters: [Task<(events: Int, error: String?), Never>] = []
        for prefix in prefixes {
            let p = Array(prefix.utf8)
            let handle = try await client.watch(key: p, rangeEnd: prefixEnd(p), startRevision: fromRevision, prevKV: true)
            handles.append(handle)
            counters.append(Task {
                var events = 0
                do {
                    for try await batch in handle.events { events += batch.count }
                    return (events, nil)
                } catch {
                    return (events, "watch \(prefix): \(error)")
                }
            })
        }
        self.handles = handles
        self.counters = counters
    }

    /// Cancels every watch; returns the events received and the first watch error, if any.
    func stop(graceSeconds: Double) async -> (events: Int, error: String?) {
        try? await Task.sleep(nanoseconds: UInt64(graceSeconds * 1e9))
        for handle in handles { await handle.cancel() }
        var total = 0
        var firstError: String?
        for counter in counters {
            let (events, error) = await counter.value
            total += events
            if firstError == nil { firstError = error }
        }
        return (total, firstError)
    }
}
