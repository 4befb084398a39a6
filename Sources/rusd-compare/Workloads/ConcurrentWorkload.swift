import Foundation

/// Closed-loop load with 1, 16, 64 and 256 concurrent clients, as etcd's `benchmark` tool:
/// 8-byte keys drawn from a key space, 256-byte values (or 100 KiB for `put-large`), clients
/// multiplexed over up to 8 connections. Each client level runs for a fixed time.
struct ConcurrentWorkload: Workload {
    enum Kind: String, Sendable { case put, range, txn, putLarge = "put-large" }
    let kind: Kind
    var name: String { kind.rawValue }
    var summary: String {
        switch kind {
        case .put: return "Put, 8-byte keys, 256-byte values, 1/16/64/256 clients (etcd benchmark put)"
        case .range: return "linearizable single-key Range over 10,000 preloaded keys (1,000 quick), 1/16/64/256 clients; preload not measured"
        case .txn: return "Txn Then(Put), 8-byte keys, 256-byte values, 1/16/64/256 clients (etcd benchmark txn-put)"
        case .putLarge: return "Put of 100 KiB values, 1/16 clients"
        }
    }
    let needsPersistentClient = true

    static let connectionsMax = 8
    /// Keys drawn from [0, keySpace); 1,000 with --quick.
    static let keySpace = 10_000

    func run(_ context: WorkloadContext) async throws -> WorkloadResult {
        let levels = kind == .putLarge ? [1, 16] : [1, 16, 64, 256]
        let seconds = context.quick ? 1.0 : 10.0
        let valueSize = kind == .putLarge ? 100 * 1024 : 256
        let value = [UInt8]((0..<valueSize).map { UInt8(0x61 + $0 % 26) })
        let keySpace = context.quick ? 1_000 : Self.keySpace
        let connections = try await context.connect(count: Self.connectionsMax)
        var result = WorkloadResult()

        if kind == .range {
            context.progress.begin("  \(name) preload on \(context.spec.name)", total: keySpace)
            try await preload(connections, keySpace: keySpace, value: value, progress: context.progress)
            context.progress.finish("\(keySpace) keys")
            // Memory holding exactly the preloaded keys, before the load starts.
            if let pid = context.server?.pid, let stats = ProcessStats.read(pid: pid) {
                result.metrics["rss_after_preload_bytes"] = Double(stats.rssBytes)
            }
            context.measurementWindow.restart()
        }
        context.progress.begin("  \(name) on \(context.spec.name)", total: levels.count)
        var best = 0.0
        var totalOps = 0
        var errors = 0
        var logical: Int64 = 0
        let serverPID = context.server?.pid
        let clientPID = getpid()
        for clients in levels {
            let serverBefore = serverPID.flatMap(ProcessStats.read(pid:))
            let clientBefore = ProcessStats.read(pid: clientPID)
            let (histogram, elapsed) = try await runLevel(clients: clients, seconds: seconds, keySpace: keySpace,
                                                          connections: connections, value: value)
            let ops = Int(histogram.count)
            let rate = Double(ops) / elapsed
            result.latency["\(name) c=\(clients)"] = histogram.summary()
            result.metrics["ops_s c=\(clients)"] = rate
            // CPU per 1k requests at this level: the server's and this process's (the client).
            if ops > 0 {
                if let before = serverBefore, let after = serverPID.flatMap(ProcessStats.read(pid:)) {
                    result.metrics["server_cpu_ms_per_1k c=\(clients)"] = (after.cpuSeconds - before.cpuSeconds) * 1e6 / Double(ops)
                }
                if let before = clientBefore, let after = ProcessStats.read(pid: clientPID) {
                    result.metrics["client_cpu_ms_per_1k c=\(clients)"] = (after.cpuSeconds - before.cpuSeconds) * 1e6 / Double(ops)
                }
            }
            best = max(best, rate)
            totalOps += ops
            errors += histogram.errors
            if kind != .range { logical += Int64(ops) * Int64(8 + valueSize) }
            context.progress.advance()
        }
        for c in connections { await c.close() }
        result.operations = totalOps
        result.logicalBytesWritten = logical
        result.metrics[MetricName.throughput] = best
        result.metrics[MetricName.operations] = Double(totalOps)
        result.metrics[MetricName.errors] = Double(errors)
        let line = levels.map { String(format: "c=%d %.0f/s", $0, result.metrics["ops_s c=\($0)"] ?? 0) }
        context.progress.finish(line.joined(separator: ", "))
        return result
    }

    private func runLevel(clients: Int, seconds: Double, keySpace: Int, connections: [any EtcdClient],
                          value: [UInt8]) async throws -> (LatencyHistogram, Double) {
        let operation: ClosedLoopLoad.Operation
        switch kind {
        case .put, .putLarge: operation = .put
        case .range: operation = .range
        case .txn: operation = .txnPut
        }
        let start = monotonicNanos()
        let deadline = start + UInt64(seconds * 1e9)
        // Worker w uses connection w % connections.count, with its own random key sequence.
        var loads: [(any EtcdClient, ClosedLoopLoad)] = []
        for (index, client) in connections.enumerated() {
            let seeds = stride(from: index, to: clients, by: connections.count).map { UInt64($0) &+ start }
            if seeds.isEmpty { continue }
            loads.append((client, ClosedLoopLoad(operation: operation, seeds: seeds, deadline: deadline,
                                                 keySpace: keySpace, value: value)))
        }
        let runs = loads
        let merged = try await LatencyHistogram.merged(workers: runs.count) { i in
            try await runs[i].0.runClosedLoop(runs[i].1)
        }
        return (merged, secondsSince(start))
    }

    private func preload(_ connections: [any EtcdClient], keySpace: Int, value: [UInt8], progress: ProgressReporter) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<connections.count {
                let client = connections[worker]
                group.addTask {
                    var i = worker
                    while i < keySpace {
                        _ = try await client.put(key: eightByteKey(i), value: value, lease: 0)
                        progress.advance()
                        i += connections.count
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
