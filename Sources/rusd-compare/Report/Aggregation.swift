/// Median with min and max over rounds.
struct Spread: Sendable {
    var median: Double
    var min: Double
    var max: Double
    var samples: Int

    init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let mid = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        min = sorted.first!
        max = sorted.last!
        samples = sorted.count
    }
}

/// Views over a report's measurements grouped by workload and target.
struct ReportIndex: Sendable {
    let report: CompareReport

    var workloadsInOrder: [String] {
        var seen: [String] = []
        for m in report.measurements where !seen.contains(m.workload) { seen.append(m.workload) }
        return seen
    }
    var targetNames: [String] { report.targets.map(\.name) }

    func runs(_ workload: String, _ target: String) -> [Measurement] {
        report.measurements.filter { $0.workload == workload && $0.target == target }
    }
    func okRuns(_ workload: String, _ target: String) -> [Measurement] {
        runs(workload, target).filter { $0.status == .ok }
    }
    func metric(_ workload: String, _ target: String, _ name: String) -> Spread? {
        Spread(okRuns(workload, target).compactMap { $0.metrics[name] })
    }
    func metricNames(_ workload: String) -> [String] {
        Set(report.measurements.filter { $0.workload == workload }.flatMap { $0.metrics.keys }).sorted(by: Self.naturalOrder)
    }
    func latencyKinds(_ workload: String) -> [String] {
        Set(report.measurements.filter { $0.workload == workload }.flatMap { $0.latency.keys }).sorted(by: Self.naturalOrder)
    }
    /// Alphabetical, except client levels in numeric order ("put c=16" after "put c=1").
    static func naturalOrder(_ lhs: String, _ rhs: String) -> Bool {
        let a = lhs.split(separator: "="), b = rhs.split(separator: "=")
        if a.count == 2, b.count == 2, a[0] == b[0], let x = Int(a[1]), let y = Int(b[1]) { return x < y }
        return lhs < rhs
    }
    func latency(_ workload: String, _ target: String, _ kind: String, _ field: KeyPath<LatencySummary, Double>) -> Spread? {
        Spread(okRuns(workload, target).compactMap { $0.latency[kind]?[keyPath: field] })
    }
    /// The run whose value of the first latency kind's p99 is the median: its CDF is charted.
    func medianRun(_ workload: String, _ target: String, kind: String) -> LatencySummary? {
        let summaries = okRuns(workload, target).compactMap { $0.latency[kind] }.sorted { $0.p99Ms < $1.p99Ms }
        return summaries.isEmpty ? nil : summaries[summaries.count / 2]
    }
    /// Why a workload did not run on a target (skipped/failed note), if it never succeeded.
    func problem(_ workload: String, _ target: String) -> String? {
        let all = runs(workload, target)
        if all.contains(where: { $0.status == .ok }) { return nil }
        return all.first.map { "\($0.status.rawValue): " + ($0.note ?? "").split(separator: "\n").joined(separator: " / ") }
    }
}
