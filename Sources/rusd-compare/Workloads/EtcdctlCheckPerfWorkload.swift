import Foundation

/// The real `etcdctl check perf --load=s` (60 s, fixed by etcdctl), as an independent judge of
/// the `check-perf` tiers: etcd's own Go client and its own verdict. Full runs only.
struct EtcdctlCheckPerfWorkload: Workload {
    let name = "check-perf-etcdctl"
    let summary = "the real `etcdctl check perf --load=s` (60 s, etcd's Go client and verdict); skipped with --quick"
    let needsPersistentClient = false
    let runsInQuickMode = false

    func run(_ context: WorkloadContext) async throws -> WorkloadResult {
        var result = WorkloadResult()
        context.progress.begin("  \(name) on \(context.spec.name)", total: 0)
        let etcdctl = context.etcdctl
        let output = try await offPool { try etcdctl.run(["check", "perf", "--load=s"]) }
        // Lines: "PASS: Throughput is 150 writes/s", "PASS: Slowest request took 0.012s",
        // "PASS: Stddev is 0.0015s", then "PASS" or "FAIL".
        func number(after marker: String) -> Double? {
            for line in output.stdout.split(separator: "\n") {
                guard let range = line.range(of: marker) else { continue }
                let rest = line[range.upperBound...].trimmingCharacters(in: .whitespaces)
                let digits = rest.prefix { $0.isNumber || $0 == "." }
                return Double(digits)
            }
            return nil
        }
        let lines = output.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let passed = output.succeeded && lines.contains("PASS") && !lines.contains { $0.hasPrefix("FAIL") }
        result.metrics["tier_s_pass"] = passed ? 1 : 0
        if let v = number(after: "Throughput is") { result.metrics["tier_s_rps"] = v }
        if let v = number(after: "Slowest request took") { result.metrics["tier_s_slowest_ms"] = v * 1000 }
        if let v = number(after: "Stddev is") { result.metrics["tier_s_stddev_ms"] = v * 1000 }
        let rate = result.metrics["tier_s_rps"] ?? 0
        result.metrics[MetricName.throughput] = rate
        result.operations = Int(rate * 60)
        result.logicalBytesWritten = Int64(result.operations) * (256 + 1024)
        if !passed {
            let verdict = lines.filter { $0.hasPrefix("FAIL") || $0.hasPrefix("Error") || $0.contains("too") }
            result.note = "etcdctl check perf: " + (verdict.isEmpty ? "exit \(output.exitStatus) \(output.stderr.prefix(200))" : verdict.joined(separator: "; "))
        }
        context.progress.finish(passed ? "PASS \(Int(rate))/s" : "FAIL")
        return result
    }
}
