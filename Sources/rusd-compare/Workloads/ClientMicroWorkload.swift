import Foundation

/// The original microbenchmark through one persistent connection: sequential put / get / range /
/// delete of 1,000 keys. This is the server's real per-request cost, without process start-up.
struct ClientMicroWorkload: Workload {
    let name = "client-micro"
    let summary = "sequential put/get/range/delete of 1,000 keys (100 quick) over one persistent gRPC connection"
    let needsPersistentClient = true

    func run(_ context: WorkloadContext) async throws -> WorkloadResult {
        let keys = context.quick ? 100 : 1_000
        let ranges = keys / 10
        let client = try await context.connect()
        var result = WorkloadResult()
        context.progress.begin("  \(name) on \(context.spec.name)", total: 3 * keys + ranges)
        func key(_ i: Int) -> [UInt8] { Array(String(format: "/bench/micro/key-%06d", i).utf8) }
        func value(_ i: Int) -> [UInt8] { Array(String(format: "value-%06d", i).utf8) }
        let prefix = Array("/bench/micro/".utf8)
        let started = monotonicNanos()
        var errors = 0
        for op in ["put", "get", "range", "delete"] {
            var histogram = LatencyHistogram()
            let count = op == "range" ? ranges : keys
            let phaseStart = monotonicNanos()
            for i in 0..<count {
                let t0 = monotonicNanos()
                do {
                    switch op {
                    case "put": _ = try await client.put(key: key(i), value: value(i), lease: 0)
                    case "get": _ = try await client.range(key: key(i), rangeEnd: [], limit: 0, revision: 0,
                                                           keysOnly: false, countOnly: false)
                    case "range": _ = try await client.range(key: prefix, rangeEnd: prefixEnd(prefix), limit: 0,
                                                             revision: 0, keysOnly: false, countOnly: false)
                    default: _ = try await client.delete(key: key(i), rangeEnd: [])
                    }
                    histogram.recordSince(t0)
                } catch {
                    histogram.recordError()
                }
                context.progress.advance()
            }
            let seconds = secondsSince(phaseStart)
            result.latency[op] = histogram.summary()
            result.metrics["\(op)_ops_s"] = Double(count) / seconds
            result.metrics["\(op)_total_s"] = seconds
            errors += histogram.errors
        }
        await client.close()
        let total = 3 * keys + ranges
        let seconds = secondsSince(started)
        result.operations = total
        result.metrics[MetricName.errors] = Double(errors)
        result.metrics[MetricName.durationSeconds] = seconds
        result.metrics[MetricName.throughput] = Double(total) / seconds
        result.logicalBytesWritten = Int64(keys * (key(0).count + value(0).count))
        context.progress.finish(String(format: "%.0f ops/s, put p50 %.3f ms", Double(total) / seconds,
                                       result.latency["put"]?.p50Ms ?? 0))
        return result
    }
}
