import Foundation

/// Renders a `CompareReport` as Markdown plus SVG charts.
struct MarkdownReport {
    let report: CompareReport
    /// Folder name (relative to the .md file) holding the SVG charts.
    let chartFolder: String
    var index: ReportIndex { ReportIndex(report: report) }

    /// A headline row: a label and how to read its value from one workload's runs.
    struct HeadlineRow {
        enum Source { case metric(String); case latency(String, KeyPath<LatencySummary, Double>) }
        var workload: String
        var label: String
        var source: Source
        var unit: Unit
    }
    enum Unit { case ms, opsPerSecond, bytes, ratio, seconds, plain, passFail }

    static var headlineRows: [HeadlineRow] {
        var rows: [HeadlineRow] = []
        for op in ["put", "get", "range", "delete"] {
            rows.append(HeadlineRow(workload: "etcdctl-micro", label: "etcdctl \(op), p50 per call", source: .latency(op, \.p50Ms), unit: .ms))
        }
        rows.append(HeadlineRow(workload: "etcdctl-micro", label: "etcdctl start-up alone (`etcdctl version`)", source: .metric("etcdctl_startup_ms"), unit: .ms))
        rows.append(HeadlineRow(workload: "etcdctl-micro", label: "RSS after etcdctl micro run", source: .metric(MetricName.finalRSS), unit: .bytes))
        for op in ["put", "get", "range", "delete"] {
            rows.append(HeadlineRow(workload: "client-micro", label: "client \(op), p50", source: .latency(op, \.p50Ms), unit: .ms))
        }
        for w in ["put", "range", "txn"] {
            for c in [1, 16, 64, 256] {
                rows.append(HeadlineRow(workload: w, label: "\(w), \(c) client\(c == 1 ? "" : "s")", source: .metric("ops_s c=\(c)"), unit: .opsPerSecond))
            }
            rows.append(HeadlineRow(workload: w, label: "\(w), 16 clients, p99", source: .latency("\(w) c=16", \.p99Ms), unit: .ms))
            rows.append(HeadlineRow(workload: w, label: "\(w), 64 clients, p99", source: .latency("\(w) c=64", \.p99Ms), unit: .ms))
            rows.append(HeadlineRow(workload: w, label: "\(w): server CPU per 1k requests", source: .metric(MetricName.cpuPerKiloOp), unit: .ms))
        }
        for role in ["leader", "follower"] {
            rows.append(HeadlineRow(workload: "failover", label: "failover: kill -9 of the client's member (\(role)) → next write, median",
                                    source: .metric("failover_\(role)_ms"), unit: .ms))
            rows.append(HeadlineRow(workload: "failover", label: "failover (\(role)), slowest trial",
                                    source: .metric("failover_\(role)_max_ms"), unit: .ms))
        }
        rows.append(HeadlineRow(workload: "put-large", label: "put 100 KiB, 16 clients", source: .metric("ops_s c=16"), unit: .opsPerSecond))
        for s in ["namespaces", "configmaps", "deploy-scale-5", "rolling-update", "cleanup"] {
            rows.append(HeadlineRow(workload: "k8s-scenarios", label: "k8s: \(s)", source: .metric("\(s)_ms"), unit: .ms))
        }
        rows.append(HeadlineRow(workload: "k8s-churn", label: "k8s churn, requests/s", source: .metric(MetricName.throughput), unit: .opsPerSecond))
        rows.append(HeadlineRow(workload: "k8s-churn", label: "k8s churn, update p99", source: .latency("update", \.p99Ms), unit: .ms))
        rows.append(HeadlineRow(workload: "k8s-churn", label: "k8s churn, watch lag p99 (write answered -> event received)", source: .latency("watch lag", \.p99Ms), unit: .ms))
        rows.append(HeadlineRow(workload: "watch-fanout", label: "watch fan-out, events/s", source: .metric("events_per_s"), unit: .opsPerSecond))
        rows.append(HeadlineRow(workload: "watch-fanout", label: "watch fan-out, delivery p50", source: .latency("event delivery", \.p50Ms), unit: .ms))
        rows.append(HeadlineRow(workload: "watch-fanout", label: "watch fan-out, delivery p99", source: .latency("event delivery", \.p99Ms), unit: .ms))
        rows.append(HeadlineRow(workload: "watch-fanout", label: "watch fan-out, put rate with watchers / without", source: .metric("put_rate_with_vs_without"), unit: .ratio))
        rows.append(HeadlineRow(workload: "watch-fanout", label: "watch fan-out, peak RSS", source: .metric(MetricName.peakRSS), unit: .bytes))
        for t in ["s", "m", "l", "xl"] {
            rows.append(HeadlineRow(workload: "check-perf", label: "check perf \(t)", source: .metric("tier_\(t)_pass"), unit: .passFail))
        }
        rows.append(HeadlineRow(workload: "check-perf-etcdctl", label: "etcdctl check perf s (the real one)", source: .metric("tier_s_pass"), unit: .passFail))
        rows.append(HeadlineRow(workload: "startup", label: "startup, empty", source: .metric("startup_empty_ms"), unit: .ms))
        for n in [10_000, 1_000_000] {
            rows.append(HeadlineRow(workload: "startup", label: "startup, \(n) keys", source: .metric("startup_\(n)_keys_ms"), unit: .ms))
        }
        rows.append(HeadlineRow(workload: "range", label: "RSS holding 10,000 keys (range preload; 1,000 quick)", source: .metric("rss_after_preload_bytes"), unit: .bytes))
        rows.append(HeadlineRow(workload: "k8s-churn", label: "peak RSS, k8s churn", source: .metric(MetricName.peakRSS), unit: .bytes))
        rows.append(HeadlineRow(workload: "put", label: "write amplification, put", source: .metric(MetricName.writeAmplification), unit: .ratio))
        rows.append(HeadlineRow(workload: "put", label: "disk after put, compacted + defragmented", source: .metric(MetricName.diskBytesAfterDefrag), unit: .bytes))
        return rows
    }

    static func format(_ value: Double, _ unit: Unit) -> String {
        switch unit {
        case .ms: return value >= 100 ? String(format: "%.0f ms", value) : value >= 1 ? String(format: "%.2f ms", value) : String(format: "%.3f ms", value)
        case .opsPerSecond: return value >= 100 ? String(format: "%.0f/s", value) : String(format: "%.1f/s", value)
        case .bytes: return formatBytes(value)
        case .ratio: return String(format: "%.2fx", value)
        case .seconds: return String(format: "%.2f s", value)
        case .plain: return value == value.rounded() && abs(value) < 1e15 ? String(format: "%.0f", value) : String(format: "%.3g", value)
        case .passFail: return value >= 1 ? "PASS" : "FAIL"
        }
    }

    static func formatBytes(_ value: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = value, i = 0
        while abs(v) >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? String(format: "%.0f B", v) : String(format: "%.1f ", v) + units[i]
    }

    static func unit(forMetric name: String) -> Unit {
        if name.hasSuffix("_ms") || name.contains("_ms_") { return .ms }
        if name.hasSuffix("_bytes") || name.contains("disk_bytes") || name == MetricName.bytesWritten || name == MetricName.logicalBytes { return .bytes }
        if name.hasPrefix("ops_s") || name.hasSuffix("_ops_s") || name.hasSuffix("_per_s") || name.hasSuffix("_rps") { return .opsPerSecond }
        if name.hasSuffix("_pass") { return .passFail }
        if name == MetricName.writeAmplification { return .ratio }
        if name.hasSuffix("_s") { return .seconds }
        return .plain
    }

    func cell(_ spread: Spread?, _ unit: Unit) -> String {
        guard let s = spread else { return "–" }
        if unit == .passFail { return s.min >= 1 ? "PASS" : s.max < 1 ? "FAIL" : "mixed" }
        if s.samples == 1 || s.min == s.max { return Self.format(s.median, unit) }
        return "\(Self.format(s.median, unit)) (\(Self.format(s.min, unit))–\(Self.format(s.max, unit)))"
    }

    func headlineValue(_ row: HeadlineRow, _ target: String) -> Spread? {
        switch row.source {
        case .metric(let name): return index.metric(row.workload, target, name)
        case .latency(let kind, let field): return index.latency(row.workload, target, kind, field)
        }
    }

    /// The headline table alone (also pasted into the README).
    func headlineTable() -> String {
        let targets = index.targetNames
        var s = "| measure | " + targets.joined(separator: " | ") + " |\n"
        s += "|---|" + targets.map { _ in "---:|" }.joined() + "\n"
        for row in Self.headlineRows {
            let cells = targets.map { cell(headlineValue(row, $0), row.unit) }
            if cells.allSatisfy({ $0 == "–" }) { continue }
            s += "| \(row.label) | " + cells.joined(separator: " | ") + " |\n"
        }
        return s
    }

    func render() -> String {
        let r = report
        let m = r.machine
        var s = "# rusd-compare: \(m.hostname), \(r.startedAt.prefix(10))\n\n"
        s += "Run \(r.startedAt) – \(r.finishedAt); \(r.options.rounds) round(s), targets interleaved round by round, "
        s += "a fresh server and data dir per run; \(r.options.quick ? "**quick** (smoke run, small sizes)" : "full sizes"); "
        s += "durability: \(r.options.unsafeNoFsync ? "**--unsafe-no-fsync**" : "fsync on (defaults)"); persistent client: \(r.options.client).\n"
        s += "Cells are the median over rounds with (min–max) when they differ.\n\n"
        s += "## Machine\n\n| | |\n|---|---|\n"
        s += "| CPU | \(m.cpuModel), \(m.cores) cores |\n| memory | \(Self.formatBytes(Double(m.memoryBytes))) |\n"
        s += "| kernel | \(m.kernel) |\n| data dirs | \(m.workDir) (\(m.workDirFilesystem)) |\n"
        s += "| fdatasync (4 KiB write + fdatasync, x100) | p50 \(Self.format(m.fdatasyncP50Ms, .ms)), p99 \(Self.format(m.fdatasyncP99Ms, .ms)) |\n"
        s += "| rusd | \(m.rusdVersion ?? "not found") |\n| etcd | \(m.etcdVersion ?? "not found") |\n| etcdctl | \(m.etcdctlVersion ?? "not found") |\n"
        for (lib, version) in m.engineLibraries.sorted(by: { $0.key < $1.key }) { s += "| \(lib) | \(version) |\n" }
        s += "\n## Targets\n\n| target | kind | engine | version | binary size | durability | endpoint |\n|---|---|---|---|---:|---|---|\n"
        for t in r.targets {
            s += "| \(t.name) | \(t.kind.rawValue) | \(t.engine ?? "–") | \(t.version ?? "–") | "
            s += "\(t.binarySizeBytes.map { Self.formatBytes(Double($0)) } ?? "–") | \(t.durability) | \(t.endpoint ?? "started per run") |\n"
        }
        if !r.notes.isEmpty { s += "\n" + r.notes.map { "- \($0)" }.joined(separator: "\n") + "\n" }
        let headline = headlineTable()
        // A run of only workloads without headline rows (e.g. the sweep) has no headline.
        if headline.split(separator: "\n").count > 2 {
            s += "\n## Headline\n\n" + headline
            s += "\nThe `etcdctl` rows start one etcdctl process per operation, as the original comparison did: "
            s += "most of each call is etcdctl's own start-up (see the start-up row), not the server. "
            s += "The `client` rows and everything below use one persistent gRPC connection per worker and show the server's real cost.\n"
        }
        s += "\n## Charts\n\n"
        for chart in chartFiles() { s += "![\(chart.title)](\(chartFolder)/\(chart.file))\n\n" }
        for workload in index.workloadsInOrder { s += section(workload) }
        return s
    }

    private func section(_ workload: String) -> String {
        let targets = index.targetNames
        let summary = WorkloadCatalog.named(workload)?.summary ?? ""
        var s = "\n## \(workload)\n\n\(summary)\n\n"
        var problems = targets.compactMap { t in index.problem(workload, t).map { "- \(t): \($0)" } }
        for t in targets {
            for run in index.okRuns(workload, t) {
                if let note = run.note { problems.append("- \(t), round \(run.round): " + note.split(separator: "\n").joined(separator: " / ")) }
            }
        }
        if !problems.isEmpty { s += problems.joined(separator: "\n") + "\n\n" }
        let metricNames = index.metricNames(workload)
        if workload == "sweep" {
            s += sweepTables()
        } else if !metricNames.isEmpty {
            s += "| metric | " + targets.joined(separator: " | ") + " |\n|---|" + targets.map { _ in "---:|" }.joined() + "\n"
            for name in metricNames {
                let unit = Self.unit(forMetric: name)
                s += "| \(name) | " + targets.map { cell(index.metric(workload, $0, name), unit) }.joined(separator: " | ") + " |\n"
            }
            s += "\n"
        }
        let kinds = index.latencyKinds(workload)
        if !kinds.isEmpty {
            s += "| latency | target | requests | p50 | p90 | p99 | p99.9 | max |\n|---|---|---:|---:|---:|---:|---:|---:|\n"
            for kind in kinds {
                for t in targets {
                    guard let count = Spread(index.okRuns(workload, t).compactMap { $0.latency[kind].map { Double($0.count) } }) else { continue }
                    let fields: [KeyPath<LatencySummary, Double>] = [\.p50Ms, \.p90Ms, \.p99Ms, \.p999Ms, \.maxMs]
                    s += "| \(kind) | \(t) | \(Self.format(count.median, .plain)) | "
                    s += fields.map { cell(index.latency(workload, t, kind, $0), .ms) }.joined(separator: " | ") + " |\n"
                }
            }
        }
        return s
    }

    struct Chart { var file: String; var title: String; var svg: String }

    /// Latency CDF per workload (its most-sampled request kind), throughput vs clients, and
    /// write amplification per target.
    func chartFiles() -> [Chart] {
        var charts: [Chart] = []
        let targets = index.targetNames
        let ticks: [(Double, String)] = [(0, "0%"), (1, "90%"), (2, "99%"), (3, "99.9%"), (4, "99.99%")]
        func xPos(_ percentile: Double) -> Double { min(4.3, -log10(max(1e-5, 1 - percentile / 100))) }
        for workload in index.workloadsInOrder where workload != "sweep" {
            let kinds = index.latencyKinds(workload).filter { !$0.hasPrefix("etcdctl version") }
            let counts = kinds.map { kind in
                (kind, targets.compactMap { index.medianRun(workload, $0, kind: kind)?.count }.reduce(0, +))
            }
            guard var kind = counts.max(by: { $0.1 < $1.1 })?.0, counts.contains(where: { $0.1 > 0 }) else { continue }
            if kinds.contains("\(workload) c=16") { kind = "\(workload) c=16" }
            let series = targets.compactMap { t -> SVGCharts.Series? in
                guard let summary = index.medianRun(workload, t, kind: kind) else { return nil }
                return SVGCharts.Series(name: t, points: summary.cdf.map { (xPos($0[0]), $0[1]) })
            }
            let title = "\(workload): latency CDF (\(kind))"
            charts.append(Chart(file: "latency-cdf-\(workload).svg", title: title,
                                svg: SVGCharts.lineChart(title: title, xLabel: "percentile", yLabel: "latency (ms, log)",
                                                         series: series, xTicks: ticks, logY: true)))
        }
        for workload in ["put", "range", "txn"] where index.workloadsInOrder.contains(workload) {
            let levels = [1, 16, 64, 256]
            let series = targets.map { t in
                SVGCharts.Series(name: t, points: levels.enumerated().compactMap { i, c in
                    index.metric(workload, t, "ops_s c=\(c)").map { (Double(i), $0.median) }
                })
            }
            guard series.contains(where: { !$0.points.isEmpty }) else { continue }
            let title = "\(workload): throughput against clients"
            charts.append(Chart(file: "throughput-\(workload).svg", title: title,
                                svg: SVGCharts.lineChart(title: title, xLabel: "concurrent clients", yLabel: "requests/s",
                                                         series: series, xTicks: levels.enumerated().map { (Double($0), "\($1)") },
                                                         logY: false)))
        }
        let ampWorkloads = index.workloadsInOrder.filter { w in
            targets.contains { index.metric(w, $0, MetricName.writeAmplification) != nil }
        }
        charts += sweepCharts()
        if !ampWorkloads.isEmpty {
            let series = targets.map { t in (t, ampWorkloads.map { index.metric($0, t, MetricName.writeAmplification)?.median }) }
            let title = "write amplification (bytes written / key+value bytes)"
            charts.append(Chart(file: "write-amplification.svg", title: title,
                                svg: SVGCharts.barChart(title: title, yLabel: "x", categories: ampWorkloads, series: series)))
        }
        return charts
    }
}
