import Foundation

/// The original Kubernetes scenarios as object-level etcd calls (the Txn shapes kube-apiserver
/// uses), with a watcher on every resource prefix (prev_kv), Event objects on one shared lease
/// and the apiserver's compaction step every few seconds:
/// 1. create 10 namespaces, 2. create 50 ConfigMaps, 3. create a Deployment and scale it to 5
/// (ReplicaSet + 5 Pods, each Pod created, bound, marked running, with Events),
/// 4. rolling update of the 5 replicas (new ReplicaSet, surge one Pod up, one old Pod down),
/// 5. clean up (Pods, ReplicaSets, Deployment, ConfigMaps, Namespaces; graceful: update then delete).
struct KubernetesScenariosWorkload: Workload {
    let name = "k8s-scenarios"
    let summary = "namespaces, ConfigMaps, deployment + scale to 5, rolling update, cleanup as kube-apiserver Txns, with watchers, lease-bound events, compaction"
    let needsPersistentClient = true

    static let prefixes = ["/registry/namespaces/", "/registry/configmaps/", "/registry/deployments/",
                           "/registry/replicasets/", "/registry/pods/", "/registry/events/"]

    func run(_ context: WorkloadContext) async throws -> WorkloadResult {
        let client = try await context.connect()
        let watchClient = try await context.connect()
        let startRevision = try await client.currentRevision()
        let watchers = try await PrefixWatchers(client: watchClient, prefixes: Self.prefixes,
                                                fromRevision: startRevision + 1)
        let lease = try await client.leaseGrant(ttl: 3_600)
        // The apiserver compacts every 5 minutes; the scenarios take seconds, so compact every
        // 5 s (0.25 s quick) to have compactions inside the measured traffic.
        let compactor = Compactor(client: try await context.connect(), intervalSeconds: context.quick ? 0.25 : 5)
        let compactorTask = Task { try await compactor.run() }

        var store = KubeObjectStore(client: client)
        var result = WorkloadResult()
        var eventCounter = 0
        func event(_ store: inout KubeObjectStore, _ ns: String, _ reason: String) async throws {
            eventCounter += 1
            try await store.create("/registry/events/\(ns)/ev-\(eventCounter)",
                                   kubeObject(kind: "Event", name: reason, generation: 1, size: 400), lease: lease)
        }
        func pod(_ store: inout KubeObjectStore, _ name: String) async throws {
            let key = "/registry/pods/default/\(name)"
            try await store.create(key, kubeObject(kind: "Pod", name: name, generation: 1))
            try await event(&store, "default", "Scheduled")
            try await store.update(key, kubeObject(kind: "Pod", name: name, generation: 2))   // bound to a node
            try await event(&store, "default", "Pulled")
            try await event(&store, "default", "Started")
            try await store.update(key, kubeObject(kind: "Pod", name: name, generation: 3))   // status Running
        }
        func removePod(_ store: inout KubeObjectStore, _ name: String) async throws {
            let key = "/registry/pods/default/\(name)"
            try await store.update(key, kubeObject(kind: "Pod", name: name, generation: 4))   // deletionTimestamp
            try await event(&store, "default", "Killing")
            try await store.delete(key)
        }

        let scenarios = ["namespaces", "configmaps", "deploy-scale-5", "rolling-update", "cleanup"]
        context.progress.begin("  \(name) on \(context.spec.name)", total: scenarios.count)
        let started = monotonicNanos()
        for scenario in scenarios {
            let t0 = monotonicNanos()
            switch scenario {
            case "namespaces":
                for i in 0..<10 {
                    try await store.create("/registry/namespaces/ns-\(i)", kubeObject(kind: "Namespace", name: "ns-\(i)", generation: 1))
                }
                try await store.list("/registry/namespaces/")
            case "configmaps":
                for i in 0..<50 {
                    try await store.create("/registry/configmaps/default/cm-\(i)", kubeObject(kind: "ConfigMap", name: "cm-\(i)", generation: 1))
                }
                try await store.list("/registry/configmaps/default/")
            case "deploy-scale-5":
                let deployment = "/registry/deployments/default/web"
                try await store.create(deployment, kubeObject(kind: "Deployment", name: "web", generation: 1))
                try await store.create("/registry/replicasets/default/web-1", kubeObject(kind: "ReplicaSet", name: "web-1", generation: 1))
                try await event(&store, "default", "ScalingReplicaSet")
                try await store.update(deployment, kubeObject(kind: "Deployment", name: "web", generation: 2))  // scale to 5
                try await store.update("/registry/replicasets/default/web-1", kubeObject(kind: "ReplicaSet", name: "web-1", generation: 2))
                for i in 0..<5 {
                    try await pod(&store, "web-1-\(i)")
                    try await store.update("/registry/replicasets/default/web-1", kubeObject(kind: "ReplicaSet", name: "web-1", generation: 3 + i))
                }
                try await store.update(deployment, kubeObject(kind: "Deployment", name: "web", generation: 3))  // status
                try await store.list("/registry/pods/default/")
            case "rolling-update":
                let deployment = "/registry/deployments/default/web"
                try await store.update(deployment, kubeObject(kind: "Deployment", name: "web", generation: 4))  // new template
                try await store.create("/registry/replicasets/default/web-2", kubeObject(kind: "ReplicaSet", name: "web-2", generation: 1))
                for i in 0..<5 {
                    try await store.update("/registry/replicasets/default/web-2", kubeObject(kind: "ReplicaSet", name: "web-2", generation: 2 + i))
                    try await pod(&store, "web-2-\(i)")
                    try await store.update("/registry/replicasets/default/web-1", kubeObject(kind: "ReplicaSet", name: "web-1", generation: 10 + i))
                    try await removePod(&store, "web-1-\(i)")
                    try await event(&store, "default", "ScalingReplicaSet")
                    try await store.update(deployment, kubeObject(kind: "Deployment", name: "web", generation: 5 + i))  // status
                }
                try await store.list("/registry/pods/default/")
            default:  // cleanup
                for i in 0..<5 { try await removePod(&store, "web-2-\(i)") }
                try await store.delete("/registry/replicasets/default/web-1")
                try await store.delete("/registry/replicasets/default/web-2")
                try await store.delete("/registry/deployments/default/web")
                for i in 0..<50 { try await store.delete("/registry/configmaps/default/cm-\(i)") }
                for i in 0..<10 {
                    try await store.update("/registry/namespaces/ns-\(i)", kubeObject(kind: "Namespace", name: "ns-\(i)", generation: 2))  // Terminating
                    try await store.delete("/registry/namespaces/ns-\(i)")
                }
            }
            result.metrics["\(scenario)_ms"] = Double(monotonicNanos() - t0) / 1e6
            context.progress.advance()
        }
        let seconds = secondsSince(started)
        compactorTask.cancel()
        let compactions = (try? await compactorTask.value) ?? 0
        let (delivered, watchError, watchLag) = await watchers.stop(graceSeconds: 0.5, acknowledged: store.acknowledged)
        await compactor.close()
        await client.close()
        await watchClient.close()

        for (kind, histogram) in store.latency { result.latency[kind] = histogram.summary() }
        result.latency["watch lag"] = watchLag.summary()
        result.operations = store.operations
        result.logicalBytesWritten = store.logicalBytes
        result.metrics[MetricName.durationSeconds] = seconds
        result.metrics[MetricName.throughput] = Double(store.operations) / seconds
        result.metrics["conflicts"] = Double(store.conflicts)
        result.metrics["watch_events_expected"] = Double(store.mutations)
        result.metrics["watch_events_delivered"] = Double(delivered)
        result.metrics["compactions"] = Double(compactions)
        result.note = watchError
        context.progress.finish(String(format: "%.0f ms total, %d requests, %d/%d watch events", seconds * 1000,
                                       store.operations, delivered, store.mutations))
        return result
    }
}
