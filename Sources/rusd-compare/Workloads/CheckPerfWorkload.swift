import Foundation

/// `etcdctl check perf` load tiers, reimplemented over the persistent client so that each tier
/// can be shorter than etcdctl's fixed 60 s: puts of 256-byte keys and 1 KiB values under the
/// check-perf prefix, rate-limited to the tier's rate and spread over its clients; the pass
/// criteria are etcdctl's: no errors, throughput > 90 % of the rate, slowest request <= 0.5 s,
/// standard deviation <= 0.1 s.
struct CheckPerfWorkload: Workload {
    let name = "check-perf"
    let summary = "etcdctl check perf tiers s/m/l/xl (rate 150/1000/8000/15000 puts/s, 50/200/500/1000 clients) with its pass criteria; 20 s each (s only, 3 s, quick)"
    let needsPersistentClient = true

    struct Tier: Sendable { var name: String; var rate: Int; var clients: Int }
    static let tiers = [Tier(name: "s", rate: 150, clients: 50), Tier(name: "m", rate: 1_000, clients: 200),
                        Tier(name: "l", rate: 8_000, clients: 500), Tier(name: "xl", rate: 15_000, clients: 1_000)]

    func run(_ context: WorkloadContext) async throws -> WorkloadResult {
        let tiers = context.quick ? [Self.tiers[0]] : Self.tiers
        let seconds = context.quick ? 3.0 : 20.0
        let connections = try await context.connect(count: 8)
        var result = WorkloadResult()
        context.progress.begin("  \(name) on \(context.spec.name)", total: tiers.count)
        var verdicts: [String] = []
        for tier in tiers {
            let (histogram, elapsed, issued) = try await runTier(tier, seconds: seconds, connections: connections)
            let summary = histogram.summary()
            let rps = Double(histogram.count) / elapsed
            let pass = histogram.errors == 0 && rps / Double(tier.rate) > 0.9
                && summary.maxMs <= 500 && summary.stddevMs <= 100
            result.latency["tier \(tier.name)"] = summary
            result.metrics["tier_\(tier.name)_rps"] = rps
            result.metrics["tier_\(tier.name)_pass"] = pass ? 1 : 0
            result.metrics["tier_\(tier.name)_slowest_ms"] = summary.maxMs
            result.metrics["tier_\(tier.name)_stddev_ms"] = summary.stddevMs
            result.metrics["tier_\(tier.name)_errors"] = Double(histogram.errors)
            result.operations += issued
            result.logicalBytesWritten += Int64(histogram.count) * (256 + 1024)
            verdicts.append("\(tier.name): \(pass ? "PASS" : "FAIL") \(Int(rps))/s")
            context.progress.advance()
            // Clean the prefix between tiers, as etcdctl does after a run.
            let prefix = Array("/etcdctl-check-perf/".utf8)
            _ = try? await connections[0].delete(key: prefix, rangeEnd: prefixEnd(prefix))
        }
        for c in connections { await c.close() }
        result.metrics[MetricName.throughput] = result.metrics["tier_\(tiers.last!.name)_rps"]
        context.progress.finish(verdicts.joined(separator: ", "))
        return result
    }

    private func runTier(_ tier: Tier, seconds: Double, connections: [any EtcdClient])
        async throws -> (LatencyHistogram, Double, Int) {
        let total = Int(Double(tier.rate) * seconds)
        let next = SharedCounter()
        let start = monotonicNanos()
        let interval = 1e9 / Double(tier.rate)
        let value = [UInt8](repeating: 0, count: 1024)
        let merged = try await LatencyHistogram.merged(workers: tier.clients) { worker in
            let client = connections[worker % connections.count]
            var histogram = LatencyHistogram()
            var rng = SplitMix64(seed: start &+ UInt64(worker))
            while true {
                let i = next.takeNext()
                if i >= total { break }
                let due = start + UInt64(Double(i) * interval)
                let now = monotonicNanos()
                if due > now { try await Task.sleep(nanoseconds: due - now) }
                var key = Array("/etcdctl-check-perf/".utf8)
                key += [UInt8](repeating: 0, count: 256).enumerated().map { idx, _ in
                    idx < 8 ? UInt8(truncatingIfNeeded: rng.next()) : 0
                }
                let t0 = monotonicNanos()
                do {
                    _ = try await client.put(key: key, value: value, lease: 0)
                    histogram.recordSince(t0)
                } catch {
                    histogram.recordError()
                }
            }
            return histogram
        }
        return (merged, secondsSince(start), total)
    }
}
