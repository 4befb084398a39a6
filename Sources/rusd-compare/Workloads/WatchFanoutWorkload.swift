import Foundation

/// Watch fan-out: many watchers (1,000; 100 quick) on one prefix, spread over 10 connections;
/// one writer puts 1,000 keys (100 quick) whose values carry the send time. Measures event
/// delivery latency (put sent -> event received, same clock) and time until every watcher has
/// every event.
struct WatchFanoutWorkload: Workload {
    let name = "watch-fanout"
    let summary = "1,000 watchers (100 quick) on one prefix, 1,000 puts (100 quick); delivery latency and completion time"
    let needsPersistentClient = true

    func run(_ context: WorkloadContext) async throws -> WorkloadResult {
        let watcherCount = context.quick ? 100 : 1_000
        let puts = context.quick ? 100 : 1_000
        let prefix = Array("/fanout/".utf8)
        let watchConnections = try await context.connect(count: 10)
        let writer = try await context.connect()
        let startRevision = try await writer.currentRevision()
        var handles: [WatchHandle] = []
        for i in 0..<watcherCount {
            handles.append(try await watchConnections[i % watchConnections.count]
                .watch(key: prefix, rangeEnd: prefixEnd(prefix), startRevision: startRevision + 1, prevKV: false))
        }
        let expected = puts
        let readers = handles.map { handle in
            Task { () -> (LatencyHistogram, Int, String?) in
                var histogram = LatencyHistogram()
                var received = 0
                do {
                    for try await batch in handle.events {
                        let now = monotonicNanos()
                        for event in batch where event.kv.value.count >= 8 {
                            let sent = event.kv.value.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                            histogram.record(nanos: now &- sent)
                            received += 1
                        }
                        if received >= expected { break }
                    }
                    return (histogram, received, nil)
                } catch {
                    return (histogram, received, "\(error)")
                }
            }
        }
        context.progress.begin("  \(name) on \(context.spec.name)", total: puts)
        let started = monotonicNanos()
        var putLatency = LatencyHistogram()
        for i in 0..<puts {
            let t0 = monotonicNanos()
            let value = withUnsafeBytes(of: t0.bigEndian) { Array($0) } + [UInt8](repeating: 0x61, count: 56)
            _ = try await writer.put(key: prefix + Array(String(format: "key-%06d", i).utf8), value: value, lease: 0)
            putLatency.recordSince(t0)
            context.progress.advance()
        }
        // Wait (at most 30 s) for every watcher to receive every event.
        let waitDeadline = monotonicNanos() + 30_000_000_000
        var delivery = LatencyHistogram()
        var delivered = 0
        let collector = Task { () -> (LatencyHistogram, Int, String?) in
            var all = LatencyHistogram()
            var count = 0
            var firstError: String?
            for reader in readers {
                let (h, n, error) = await reader.value
                all.merge(h)
                count += n
                if firstError == nil { firstError = error }
            }
            return (all, count, firstError)
        }
        let timeout = Task {
            while monotonicNanos() < waitDeadline { try await Task.sleep(nanoseconds: 50_000_000) }
            for handle in handles { await handle.cancel() }
        }
        let watchError: String?
        (delivery, delivered, watchError) = await collector.value
        let seconds = secondsSince(started)
        timeout.cancel()
        for handle in handles { await handle.cancel() }
        for c in watchConnections { await c.close() }
        await writer.close()

        if delivered == 0, let watchError { throw SubprocessError(description: watchError) }
        var result = WorkloadResult()
        result.note = watchError
        result.latency["event delivery"] = delivery.summary()
        result.latency["put"] = putLatency.summary()
        result.operations = puts
        result.logicalBytesWritten = Int64(puts * (prefix.count + 10 + 64))
        result.metrics["watchers"] = Double(watcherCount)
        result.metrics["events_expected"] = Double(watcherCount * puts)
        result.metrics["events_delivered"] = Double(delivered)
        result.metrics["events_per_s"] = Double(delivered) / seconds
        result.metrics[MetricName.durationSeconds] = seconds
        result.metrics[MetricName.throughput] = Double(delivered) / seconds
        context.progress.finish(String(format: "%d/%d events in %.2f s, delivery p99 %.1f ms", delivered,
                                       watcherCount * puts, seconds, delivery.summary().p99Ms))
        return result
    }
}
