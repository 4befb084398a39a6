import Foundation

/// Watch fan-out, as the Watch issue's benchmark asks: 1,000 watchers (100 quick) on one prefix,
/// spread over 10 connections, while 16 writers put 10,000 keys (1,000 quick) under it; the same
/// puts first run with no watcher (on another prefix) for the baseline. Values carry their send
/// time, so delivery latency is put sent -> event received (same clock). Every watcher must
/// receive every event exactly once, in revision order.
struct WatchFanoutWorkload: Workload {
    let name = "watch-fanout"
    let summary = "1,000 watchers (100 quick) on one prefix while 16 clients put 10,000 keys (1,000 quick); put rate with and without the watchers, delivery latency, order"
    let needsPersistentClient = true

    static let writers = 16

    func run(_ context: WorkloadContext) async throws -> WorkloadResult {
        let watcherCount = context.quick ? 100 : 1_000
        let puts = context.quick ? 1_000 : 10_000
        let prefix = Array("/fanout/".utf8)
        let writers = try await context.connect(count: Self.writers)

        // Baseline: the same puts, nobody watching.
        context.progress.begin("  \(name) baseline on \(context.spec.name)", total: puts)
        let (_, baselineSeconds, _) = try await putAll(Array("/fanout-baseline/".utf8), count: puts, writers: writers,
                                                       progress: context.progress)
        let baselineRate = Double(puts) / baselineSeconds
        context.progress.finish(String(format: "%.0f puts/s", baselineRate))

        // The watchers run in a child process (see `WatchSinkCommand`).
        guard let endpoint = context.server?.endpoint else { throw SubprocessError(description: "no server") }
        let startRevision = try await writers[0].currentRevision()
        let sink = try WatchSinkProcess.start(endpoint: endpoint, prefix: String(decoding: prefix, as: UTF8.self),
                                              watchers: watcherCount, startRevision: startRevision + 1, expect: puts)
        context.measurementWindow.restart()
        context.progress.begin("  \(name) on \(context.spec.name)", total: puts)
        let started = monotonicNanos()
        let (putLatency, putSeconds, putErrors) = try await putAll(prefix, count: puts, writers: writers,
                                                                   progress: context.progress)
        for w in writers { await w.close() }
        let all: WatchSinkResult
        switch sink.finish() {
        case .success(let r): all = r
        case .failure(let e): throw e
        }
        let seconds = secondsSince(started)

        if all.received == 0, let error = all.error { throw SubprocessError(description: error) }
        let withRate = Double(puts) / putSeconds
        var result = WorkloadResult()
        result.note = all.error
        result.latency["event delivery"] = all.delivery
        result.latency["put"] = putLatency.summary()
        result.operations = puts
        result.logicalBytesWritten = Int64(puts * (prefix.count + 10 + 64))
        result.metrics["watchers"] = Double(watcherCount)
        result.metrics["events_expected"] = Double(watcherCount * puts)
        result.metrics["events_delivered"] = Double(all.received)
        result.metrics["events_out_of_order"] = Double(all.outOfOrder)
        result.metrics["watchers_complete_in_order"] = Double(all.completeInOrder)
        result.metrics["events_per_s"] = Double(all.received) / seconds
        result.metrics["put_s_without_watchers"] = baselineRate
        result.metrics["put_s_with_watchers"] = withRate
        result.metrics["put_rate_with_vs_without"] = withRate / baselineRate
        result.metrics[MetricName.errors] = Double(putErrors)
        result.metrics[MetricName.durationSeconds] = seconds
        result.metrics[MetricName.throughput] = Double(all.received) / seconds
        context.progress.finish(String(format: "%d/%d events in %.2f s (%d watchers complete, in order), delivery p99 %.1f ms, puts %.0f/s vs %.0f/s alone",
                                       all.received, watcherCount * puts, seconds, all.completeInOrder,
                                       all.delivery.p99Ms, withRate, baselineRate))
        return result
    }

    /// Puts keys prefix + key-000000 ... with values that start with their send time, spread
    /// over the writers (one request in flight each); returns put latencies, seconds, errors.
    private func putAll(_ prefix: [UInt8], count: Int, writers: [any EtcdClient],
                        progress: ProgressReporter) async throws -> (LatencyHistogram, Double, Int) {
        let start = monotonicNanos()
        let merged = try await LatencyHistogram.merged(workers: writers.count) { w in
            let writer = writers[w]
            var histogram = LatencyHistogram()
            var i = w
            while i < count {
                let t0 = monotonicNanos()
                let value = withUnsafeBytes(of: t0.bigEndian) { Array($0) } + [UInt8](repeating: 0x61, count: 56)
                do {
                    _ = try await writer.put(key: prefix + Array(String(format: "key-%06d", i).utf8), value: value, lease: 0)
                    histogram.recordSince(t0)
                } catch {
                    histogram.recordError()
                }
                progress.advance()
                i += writers.count
            }
            return histogram
        }
        return (merged, secondsSince(start), merged.errors)
    }
}
