import Foundation

/// Sustained churn: tens of thousands of Pods (20,000; 1,000 quick) created, bound, marked
/// running and deleted by 16 concurrent "controllers", each step with an Event on a shared lease,
/// watchers on the pods and events prefixes, and the compaction step every 5 s (0.5 s quick).
struct KubernetesChurnWorkload: Workload {
    let name = "k8s-churn"
    let summary = "20,000 Pods (1,000 quick) created/updated x2/deleted by 16 workers with events on a lease, watchers, compaction"
    let needsPersistentClient = true

    func run(_ context: WorkloadContext) async throws -> WorkloadResult {
        let objects = context.quick ? 1_000 : 20_000
        let workers = 16
        let connections = try await context.connect(count: 4)
        let watchClient = try await context.connect()
        let startRevision = try await connections[0].currentRevision()
        let watchers = try await PrefixWatchers(client: watchClient, prefixes: ["/registry/pods/", "/registry/events/"],
                                                fromRevision: startRevision + 1)
        let lease = try await connections[0].leaseGrant(ttl: 3_600)
        let compactor = Compactor(client: try await context.connect(), intervalSeconds: context.quick ? 0.5 : 5)
        let compactorTask = Task { try await compactor.run() }
        let progress = context.progress
        progress.begin("  \(name) on \(context.spec.name)", total: objects)

        let started = monotonicNanos()
        let stores = try await withThrowingTaskGroup(of: KubeObjectStore.self) { group in
            for worker in 0..<workers {
                let client = connections[worker % connections.count]
                group.addTask {
                    var store = KubeObjectStore(client: client)
                    var i = worker
                    while i < objects {
                        let name = "churn-\(i)"
                        let key = "/registry/pods/churn/\(name)"
                        try await store.create(key, kubeObject(kind: "Pod", name: name, generation: 1))
                        try await store.create("/registry/events/churn/\(name).1", kubeObject(kind: "Event", name: name, generation: 1, size: 400), lease: lease)
                        try await store.update(key, kubeObject(kind: "Pod", name: name, generation: 2))
                        try await store.update(key, kubeObject(kind: "Pod", name: name, generation: 3))
                        try await store.create("/registry/events/churn/\(name).2", kubeObject(kind: "Event", name: name, generation: 1, size: 400), lease: lease)
                        try await store.delete(key)
                        progress.advance()
                        i += workers
                    }
                    return store
                }
            }
            var all: [KubeObjectStore] = []
            for try await store in group { all.append(store) }
            return all
        }
        let seconds = secondsSince(started)
        compactorTask.cancel()
        let compactions = (try? await compactorTask.value) ?? 0
        var acknowledged: [Int64: UInt64] = [:]
        for store in stores { acknowledged.merge(store.acknowledged) { a, _ in a } }
        let (delivered, watchError, watchLag) = await watchers.stop(graceSeconds: 1, acknowledged: acknowledged)
        await compactor.close()
        for c in connections { await c.close() }
        await watchClient.close()

        var result = WorkloadResult()
        var latency: [String: LatencyHistogram] = [:]
        var mutations = 0, conflicts = 0
        for store in stores {
            for (kind, h) in store.latency { latency[kind, default: LatencyHistogram()].merge(h) }
            result.operations += store.operations
            result.logicalBytesWritten += store.logicalBytes
            mutations += store.mutations
            conflicts += store.conflicts
        }
        for (kind, h) in latency { result.latency[kind] = h.summary() }
        result.latency["watch lag"] = watchLag.summary()
        result.metrics[MetricName.durationSeconds] = seconds
        result.metrics[MetricName.throughput] = Double(result.operations) / seconds
        result.metrics["objects_per_s"] = Double(objects) / seconds
        result.metrics["conflicts"] = Double(conflicts)
        result.metrics["watch_events_expected"] = Double(mutations)
        result.metrics["watch_events_delivered"] = Double(delivered)
        result.metrics["compactions"] = Double(compactions)
        result.note = watchError
        progress.finish(String(format: "%.0f requests/s, %d/%d watch events, %d compactions",
                               result.metrics[MetricName.throughput] ?? 0, delivered, mutations, compactions))
        return result
    }
}
