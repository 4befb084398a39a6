import Foundation

/// Startup time to the first served request (etcdctl get; one etcdctl call's own cost
/// subtracted): on an empty data dir, and after loading N keys (1,000,000; 10,000 quick) and
/// restarting on the same data dir. Keys are loaded in Txns of 100 Puts through the persistent
/// client, or through `etcdctl txn` when no persistent client is available.
struct StartupWorkload: Workload {
    let name = "startup"
    let summary = "time to first served request: empty, and restarted with 1,000,000 keys (10,000 quick)"
    let needsPersistentClient = false
    let managesOwnServer = true

    func run(_ context: WorkloadContext) async throws -> WorkloadResult {
        let keys = context.quick ? 10_000 : 1_000_000
        var result = WorkloadResult()
        let launcher = context.launcher
        context.progress.begin("  \(name) on \(context.spec.name)", total: keys + 2)

        let empty = try launcher.start(context.spec)
        result.metrics["startup_empty_ms"] = empty.startupMs ?? 0
        context.progress.advance()
        // Load N keys, stop, restart on the same data.
        var loadContext = context
        loadContext.server = empty
        let loadStart = monotonicNanos()
        do {
            if context.clientFactory != nil {
                try await loadWithClient(loadContext, keys: keys)
            } else {
                try loadWithEtcdctl(loadContext, keys: keys)
            }
        } catch {
            launcher.stop(empty)
            launcher.discard(empty)
            throw error
        }
        result.metrics["load_keys_per_s"] = Double(keys) / secondsSince(loadStart)
        launcher.stop(empty)
        result.metrics["disk_bytes_loaded"] = Double(diskUsageBytes(of: empty.dataDir ?? ""))
        let loaded: RunningServer
        do {
            loaded = try launcher.start(context.spec, dataDir: empty.dataDir)
        } catch {
            launcher.discard(empty)
            throw error
        }
        result.metrics["startup_\(keys)_keys_ms"] = loaded.startupMs ?? 0
        if let pid = loaded.pid, let stats = ProcessStats.read(pid: pid) {
            result.metrics["rss_after_restart_bytes"] = Double(stats.rssBytes)
        }
        context.progress.advance()
        launcher.stop(loaded)
        launcher.discard(loaded)
        result.metrics[MetricName.startupMs] = empty.startupMs ?? 0
        result.logicalBytesWritten = Int64(keys) * (16 + 64)
        context.progress.finish(String(format: "empty %.0f ms, %d keys %.0f ms", empty.startupMs ?? 0, keys,
                                       loaded.startupMs ?? 0))
        return result
    }

    private static func key(_ i: Int) -> String { String(format: "/startup/%07d", i) }
    private static let value = String(repeating: "v", count: 64)

    private func loadWithClient(_ context: WorkloadContext, keys: Int) async throws {
        let clients = try await context.connect(count: 4)
        let batch = 100
        let progress = context.progress
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<16 {
                let client = clients[worker % clients.count]
                group.addTask {
                    var first = worker * batch
                    while first < keys {
                        let ops = (first..<min(first + batch, keys)).map {
                            TxnOp.put(key: Array(Self.key($0).utf8), value: Array(Self.value.utf8), lease: 0)
                        }
                        _ = try await client.txn(compares: [], success: ops, failure: [])
                        progress.advance(ops.count)
                        first += 16 * batch
                    }
                }
            }
            try await group.waitForAll()
        }
        for c in clients { await c.close() }
    }

    private func loadWithEtcdctl(_ context: WorkloadContext, keys: Int) throws {
        let etcdctl = context.etcdctl
        let batch = 128  // etcd's default --max-txn-ops
        var first = 0
        while first < keys {
            let last = min(first + batch, keys)
            var input = "\n"
            for i in first..<last { input += "put \(Self.key(i)) \(Self.value)\n" }
            input += "\n\n"
            try etcdctl.check(["txn"], stdin: input)
            context.progress.advance(last - first)
            first = last
        }
    }
}
