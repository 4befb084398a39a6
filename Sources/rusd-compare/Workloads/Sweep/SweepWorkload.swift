import ArgumentParser
import Foundation

/// How cost grows with the store (issue 20, item 5). One server per target is filled step by
/// step to each size of the sweep (`SweepLoader`: K8s-like keys, 256-byte values, every 10th key
/// written twice more), and at each size:
///
/// 1. stopped, its data dir measured (`disk_bytes`), restarted on the same data: `startup_ms`
///    (spawn to first served `etcdctl get`, as the startup workload) and `rss_after_restart_bytes`;
/// 2. put, then linearizable single-key range, `clients` closed-loop clients for a fixed time over
///    the store's own keys (`put_ops_s`, `range_ops_s`, latencies "put n=N", "range n=N");
/// 3. full lists of the 10,000 keys under `SweepKeys.listPrefix` ("list n=N"), each checked to
///    hold exactly those keys; `peak_rss_bytes` over steps 2-3;
/// 4. `etcdctl compact <rev> --physical` and `etcdctl defrag` timed (etcdctl's own start-up
///    subtracted), then the data dir again (`disk_after_compact_defrag_bytes`).
///
/// Every server runs with `--quota-backend-bytes` 8 GiB (etcd's default 2 GiB stops near 6M
/// keys; 8 GiB is the most etcd 3.4 recommends), the same flag for rusd. A target that fails at
/// some size (e.g. NOSPACE) keeps the sizes it finished; the note says where and why it stopped.
/// Metrics are named "<measure> n=<size>".
struct SweepWorkload: Workload {
    let name = "sweep"
    var summary: String {
        "store-size sweep: fill to \(Self.fullSizes.map(SweepKeys.label).joined(separator: "/")) keys (quick: "
            + "\(Self.quickSizes.map(SweepKeys.label).joined(separator: "/"))), at each size start-up, RSS, disk, put and range at "
            + "\(Self.clients) clients, a 10,000-key list, compact + defrag; runs only when named"
    }
    let needsPersistentClient = true
    let managesOwnServer = true
    var runsByDefault: Bool { false }

    /// Sizes from `--sweep-sizes`; nil = `fullSizes` (`quickSizes` with --quick).
    var sizes: [Int]? = nil

    static let fullSizes = [10_000, 100_000, 1_000_000, 10_000_000]
    static let quickSizes = [10_000, 100_000]
    static let clients = 64
    static let connections = 8
    static let quotaBytes: Int64 = 8 << 30
    static let listRounds = 5

    /// Parses "10000,100000": positive key counts, at least `SweepKeys.listSize` (the list phase
    /// needs its 10,000 keys), returned sorted without duplicates.
    static func parseSizes(_ text: String) throws -> [Int] {
        var sizes: [Int] = []
        for part in text.split(separator: ",") {
            let trimmed = part.trimmingCharacters(in: .whitespaces)
            guard let n = Int(trimmed), n >= SweepKeys.listSize, n <= 1_000_000_000 else {
                throw ValidationError("--sweep-sizes: \"\(trimmed)\" is not a key count from \(SweepKeys.listSize) to 1000000000")
            }
            sizes.append(n)
        }
        guard !sizes.isEmpty else { throw ValidationError("--sweep-sizes: no sizes given") }
        return Array(Set(sizes)).sorted()
    }

    func run(_ context: WorkloadContext) async throws -> WorkloadResult {
        let sizes = self.sizes ?? (context.quick ? Self.quickSizes : Self.fullSizes)
        let phaseSeconds = context.quick ? 2.0 : 5.0
        var launcher = context.launcher
        launcher.readyTimeoutSeconds = 1_800
        let extra = ["--quota-backend-bytes", String(Self.quotaBytes)]
        var result = WorkloadResult()
        var server = try launcher.start(context.spec, extraArguments: extra)
        var filled = 0
        var reached: [String] = []
        for size in sizes {
            var step = context
            step.server = server
            step.launcher = launcher
            do {
                try await measure(size: size, from: filled, server: &server, context: step, extra: extra,
                                  phaseSeconds: phaseSeconds, into: &result)
                filled = size
                reached.append(SweepKeys.label(size))
            } catch {
                result.note = "stopped at \(SweepKeys.label(size)) keys (finished: \(reached.isEmpty ? "none" : reached.joined(separator: ", "))): "
                    + "\(error)".split(separator: "\n").prefix(3).joined(separator: " / ")
                context.progress.note("   \(context.spec.name): \(result.note ?? "")")
                break
            }
        }
        launcher.stop(server)
        launcher.discard(server)
        result.metrics["largest_size_finished"] = Double(filled)
        return result
    }

    /// Fills `server` from `from` keys to `size`, restarts it and measures; `server` is the one
    /// running afterwards (the restarted one), also when this throws.
    private func measure(size: Int, from: Int, server running: inout RunningServer, context: WorkloadContext,
                         extra: [String], phaseSeconds: Double, into result: inout WorkloadResult) async throws {
        let n = " n=\(size)"
        let label = SweepKeys.label(size)
        let progress = context.progress
        // 1. Fill.
        progress.begin("  sweep fill to \(label) on \(context.spec.name)", total: (size - from) + (size - from) / 5)
        var connections = try await context.connect(count: Self.connections)
        let fillStart = monotonicNanos()
        let puts: Int
        do {
            puts = try await SweepLoader(connections: connections, progress: progress).fill(from: from, to: size)
        } catch {
            for c in connections { await c.close() }
            throw error
        }
        let fillSeconds = secondsSince(fillStart)
        result.metrics["fill_keys_per_s" + n] = Double(puts) / fillSeconds
        result.metrics["fill_s" + n] = fillSeconds
        for c in connections { await c.close() }
        progress.finish(String(format: "%d puts in %.1f s (%.0f/s)", puts, fillSeconds, Double(puts) / fillSeconds))

        // 2. Restart on the same data.
        let launcher = context.launcher
        launcher.stop(running)
        running.pid = nil  // stopped and reaped: never signal that PID again
        guard let dataDir = running.dataDir else { throw SubprocessError(description: "sweep needs a server with a data dir") }
        result.metrics["disk_bytes" + n] = Double(diskUsageBytes(of: dataDir))
        let server = try launcher.start(context.spec, dataDir: dataDir, extraArguments: extra)
        running = server
        result.metrics["startup_ms" + n] = server.startupMs ?? 0
        if let pid = server.pid, let stats = ProcessStats.read(pid: pid) {
            result.metrics["rss_after_restart_bytes" + n] = Double(stats.rssBytes)
            ProcessStats.resetPeakRSS(pid: pid)
        }
        var step = context
        step.server = server

        // 3. Put, range, list.
        connections = try await step.connect(count: Self.connections)
        do {
            try await measureLoaded(size: size, server: server, connections: connections, context: step,
                                    phaseSeconds: phaseSeconds, into: &result)
        } catch {
            for c in connections { await c.close() }
            throw error
        }
        for c in connections { await c.close() }
    }

    /// Steps 3 and 4 on the restarted `server`.
    private func measureLoaded(size: Int, server: RunningServer, connections: [any EtcdClient], context step: WorkloadContext,
                               phaseSeconds: Double, into result: inout WorkloadResult) async throws {
        let n = " n=\(size)"
        let label = SweepKeys.label(size)
        let progress = step.progress
        guard let dataDir = server.dataDir else { throw SubprocessError(description: "sweep needs a server with a data dir") }
        progress.begin("  sweep at \(label) on \(step.spec.name)", total: 3)
        let value = SweepKeys.value(0, version: 3)
        for operation in [ClosedLoopLoad.Operation.put, .range] {
            let kind = operation == .put ? "put" : "range"
            let (histogram, seconds) = try await closedLoop(operation, keySpace: size, value: value,
                                                           seconds: phaseSeconds, connections: connections)
            result.latency[kind + n] = histogram.summary()
            result.metrics[kind + "_ops_s" + n] = Double(histogram.count) / seconds
            result.metrics[kind + "_errors" + n] = Double(histogram.errors)
            progress.advance()
        }
        var list = LatencyHistogram()
        let prefix = Array(SweepKeys.listPrefix.utf8)
        let expected = min(size, SweepKeys.listSize)
        for _ in 0..<Self.listRounds {
            let t0 = monotonicNanos()
            let answer = try await connections[0].range(key: prefix, rangeEnd: prefixEnd(prefix), limit: 0, revision: 0,
                                                         keysOnly: false, countOnly: false)
            list.recordSince(t0)
            guard answer.count == Int64(expected), answer.kvs.count == expected,
                  answer.kvs.first?.key == SweepKeys.key(0), answer.kvs.last?.key == SweepKeys.key(expected - 1) else {
                throw SubprocessError(description: "list of \(SweepKeys.listPrefix) returned \(answer.kvs.count) keys (count \(answer.count)), expected \(expected)")
            }
        }
        result.latency["list" + n] = list.summary()
        result.metrics["list_p50_ms" + n] = list.summary().p50Ms
        progress.advance()
        if let pid = server.pid, let stats = ProcessStats.read(pid: pid) {
            result.metrics["peak_rss_bytes" + n] = Double(stats.peakRSSBytes)
        }

        // 4. Compact + defragment, timed through etcdctl (its own start-up subtracted).
        let etcdctl = step.etcdctl
        let revision = try await connections[0].currentRevision()
        let probe = (0..<3).compactMap { _ in try? etcdctl.run(["get", "/rusd-compare/ready"]) }
            .filter(\.succeeded).map(\.elapsedNanos).min() ?? 0
        let compact = try etcdctl.check(["--command-timeout=1800s", "compact", String(revision), "--physical"])
        let defrag = try etcdctl.check(["--command-timeout=1800s", "defrag"])
        let compactMs = Double(compact.elapsedNanos > probe ? compact.elapsedNanos - probe : 0) / 1e6
        let defragMs = Double(defrag.elapsedNanos > probe ? defrag.elapsedNanos - probe : 0) / 1e6
        result.metrics["compact_ms" + n] = compactMs
        result.metrics["defrag_ms" + n] = defragMs
        result.metrics["compact_defrag_ms" + n] = compactMs + defragMs
        result.metrics["disk_after_compact_defrag_bytes" + n] = Double(diskUsageBytes(of: dataDir))
        progress.finish(String(format: "start-up %.0f ms, put %.0f/s, range %.0f/s, list p50 %.1f ms, compact+defrag %.0f ms",
                               server.startupMs ?? 0, result.metrics["put_ops_s" + n] ?? 0,
                               result.metrics["range_ops_s" + n] ?? 0, result.metrics["list_p50_ms" + n] ?? 0,
                               compactMs + defragMs))
    }

    /// `clients` closed-loop workers over `connections` for `seconds`, keys drawn from the
    /// store's [0, keySpace).
    private func closedLoop(_ operation: ClosedLoopLoad.Operation, keySpace: Int, value: [UInt8], seconds: Double,
                            connections: [any EtcdClient]) async throws -> (LatencyHistogram, Double) {
        let start = monotonicNanos()
        let deadline = start + UInt64(seconds * 1e9)
        var loads: [(any EtcdClient, ClosedLoopLoad)] = []
        for (index, client) in connections.enumerated() {
            let seeds = stride(from: index, to: Self.clients, by: connections.count).map { UInt64($0) &+ start }
            if seeds.isEmpty { continue }
            loads.append((client, ClosedLoopLoad(operation: operation, seeds: seeds, deadline: deadline, keySpace: keySpace,
                                                 value: value, keyForIndex: { SweepKeys.key($0) })))
        }
        let runs = loads
        let merged = try await LatencyHistogram.merged(workers: runs.count) { i in
            try await runs[i].0.runClosedLoop(runs[i].1)
        }
        return (merged, secondsSince(start))
    }
}
