/// The store-size sweep's part of the report: one table per measure (sizes down, targets
/// across) and one chart per measure against store size. Reads the "<measure> n=<size>" metrics
/// `SweepWorkload` writes.
extension MarkdownReport {
    struct SweepMeasure {
        var metric: String
        var title: String
        var unit: Unit
        /// Chart y label and scale (values are divided by `divisor`).
        var yLabel: String
        var divisor: Double
        var logY: Bool
        /// False for measures shown in the tables only.
        var charted = true
    }

    static let sweepMeasures: [SweepMeasure] = [
        SweepMeasure(metric: "startup_ms", title: "start-up to first served request", unit: .ms, yLabel: "ms (log)", divisor: 1, logY: true),
        SweepMeasure(metric: "rss_after_restart_bytes", title: "RSS after restart (before any request)", unit: .bytes, yLabel: "MiB (log)", divisor: 1_048_576, logY: true),
        SweepMeasure(metric: "peak_rss_bytes", title: "peak RSS during put, range and list", unit: .bytes, yLabel: "MiB (log)", divisor: 1_048_576, logY: true),
        SweepMeasure(metric: "disk_bytes", title: "disk after the fill", unit: .bytes, yLabel: "MiB (log)", divisor: 1_048_576, logY: true),
        SweepMeasure(metric: "put_ops_s", title: "put, 64 clients", unit: .opsPerSecond, yLabel: "requests/s", divisor: 1, logY: false),
        SweepMeasure(metric: "range_ops_s", title: "range (one key), 64 clients", unit: .opsPerSecond, yLabel: "requests/s", divisor: 1, logY: false),
        SweepMeasure(metric: "list_p50_ms", title: "list of one prefix's 10,000 keys, p50", unit: .ms, yLabel: "ms (log)", divisor: 1, logY: true),
        SweepMeasure(metric: "compact_defrag_ms", title: "compact + defragment", unit: .ms, yLabel: "ms (log)", divisor: 1, logY: true),
        SweepMeasure(metric: "compact_ms", title: "compact (physical)", unit: .ms, yLabel: "ms", divisor: 1, logY: true, charted: false),
        SweepMeasure(metric: "defrag_ms", title: "defragment", unit: .ms, yLabel: "ms", divisor: 1, logY: true, charted: false),
        SweepMeasure(metric: "disk_after_compact_defrag_bytes", title: "disk after compact + defragment", unit: .bytes, yLabel: "MiB (log)", divisor: 1_048_576, logY: true),
        SweepMeasure(metric: "put_errors", title: "put errors", unit: .plain, yLabel: "", divisor: 1, logY: false, charted: false),
        SweepMeasure(metric: "range_errors", title: "range errors", unit: .plain, yLabel: "", divisor: 1, logY: false, charted: false),
        SweepMeasure(metric: "fill_keys_per_s", title: "fill rate (Txns of 128 puts, 64 in flight)", unit: .opsPerSecond, yLabel: "puts/s", divisor: 1, logY: false),
    ]

    /// Store sizes that appear in the sweep's metrics, ascending.
    var sweepSizes: [Int] {
        let names = report.measurements.filter { $0.workload == "sweep" }.flatMap { $0.metrics.keys }
        return Set(names.compactMap { name -> Int? in
            guard let range = name.range(of: " n=") else { return nil }
            return Int(name[range.upperBound...])
        }).sorted()
    }

    /// The sweep's section body: what was measured per target and size.
    func sweepTables() -> String {
        let targets = index.targetNames
        let sizes = sweepSizes
        guard !sizes.isEmpty else { return "" }
        var s = ""
        for measure in Self.sweepMeasures {
            s += "**\(measure.title)** (`\(measure.metric)`)\n\n| keys | " + targets.joined(separator: " | ") + " |\n|---:|"
            s += targets.map { _ in "---:|" }.joined() + "\n"
            for size in sizes {
                s += "| \(SweepKeys.label(size)) | "
                s += targets.map { cell(index.metric("sweep", $0, "\(measure.metric) n=\(size)"), measure.unit) }.joined(separator: " | ") + " |\n"
            }
            s += "\n"
        }
        return s
    }

    /// One line chart per measure: x = store size (decades evenly spaced), one line per target.
    func sweepCharts() -> [Chart] {
        let sizes = sweepSizes
        guard !sizes.isEmpty else { return [] }
        let ticks = sizes.enumerated().map { (Double($0), SweepKeys.label($1)) }
        return Self.sweepMeasures.filter(\.charted).compactMap { measure in
            let series = index.targetNames.map { t in
                SVGCharts.Series(name: t, points: sizes.enumerated().compactMap { i, size in
                    index.metric("sweep", t, "\(measure.metric) n=\(size)").map { (Double(i), $0.median / measure.divisor) }
                })
            }
            guard series.contains(where: { !$0.points.isEmpty }) else { return nil }
            let title = "sweep: \(measure.title)"
            return Chart(file: "sweep-\(measure.metric).svg", title: title,
                         svg: SVGCharts.lineChart(title: title, xLabel: "keys in the store", yLabel: measure.yLabel,
                                                  series: series, xTicks: ticks, logY: measure.logY))
        }
    }
}
