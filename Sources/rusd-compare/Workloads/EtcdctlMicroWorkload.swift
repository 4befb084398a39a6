import Foundation

/// The original head-to-head: sequential put / get / range / delete of 1,000 keys, one `etcdctl`
/// process per operation. Most of each measured call is etcdctl's own start-up (Go runtime, gRPC
/// dial); `etcdctl_startup_ms` (running `etcdctl version`, no server involved) shows how much.
struct EtcdctlMicroWorkload: Workload {
    let name = "etcdctl-micro"
    let summary = "sequential put/get/range/delete of 1,000 keys (100 quick), one etcdctl process per operation"
    let needsPersistentClient = false

    func run(_ context: WorkloadContext) async throws -> WorkloadResult {
        let keys = context.quick ? 100 : 1_000
        let ranges = keys / 10
        let etcdctl = context.etcdctl
        var result = WorkloadResult()

        // Process start-up alone, for the report's "this is mostly start-up" line.
        var startup = LatencyHistogram()
        for _ in 0..<10 {
            let out = try Subprocess.run(etcdctl.binary, ["version"])
            startup.record(nanos: out.elapsedNanos)
        }
        result.latency["etcdctl version (no server)"] = startup.summary()

        context.progress.begin("  \(name) on \(context.spec.name)", total: 3 * keys + ranges)
        func key(_ i: Int) -> String { String(format: "/bench/micro/key-%06d", i) }
        func value(_ i: Int) -> String { String(format: "value-%06d", i) }
        let started = monotonicNanos()
        var phases: [(String, Int, (Int) -> [String])] = [
            ("put", keys, { ["put", key($0), value($0)] }),
            ("get", keys, { ["get", key($0)] }),
            ("range", ranges, { _ in ["get", "/bench/micro/", "--prefix"] }),
            ("delete", keys, { ["del", key($0)] }),
        ]
        for (op, count, arguments) in phases {
            var histogram = LatencyHistogram()
            let phaseStart = monotonicNanos()
            for i in 0..<count {
                let out = try etcdctl.run(arguments(i))
                if out.succeeded { histogram.record(nanos: out.elapsedNanos) } else { histogram.recordError() }
                context.progress.advance()
            }
            let seconds = secondsSince(phaseStart)
            result.latency[op] = histogram.summary()
            result.metrics["\(op)_ops_s"] = Double(count) / seconds
            result.metrics["\(op)_total_s"] = seconds
            result.metrics[MetricName.errors, default: 0] += Double(histogram.errors)
        }
        phases.removeAll()
        let total = 3 * keys + ranges
        let seconds = secondsSince(started)
        result.operations = total
        result.metrics[MetricName.durationSeconds] = seconds
        result.metrics[MetricName.throughput] = Double(total) / seconds
        result.metrics["etcdctl_startup_ms"] = startup.summary().p50Ms
        result.logicalBytesWritten = Int64(keys * (key(0).utf8.count + value(0).utf8.count))
        context.progress.finish(String(format: "%.0f ops/s, put p50 %.1f ms (etcdctl alone %.1f ms)",
                                       Double(total) / seconds, result.latency["put"]?.p50Ms ?? 0,
                                       startup.summary().p50Ms))
        return result
    }
}
