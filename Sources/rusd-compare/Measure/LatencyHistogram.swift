import Histogram

/// Latencies of one kind of request, in microseconds, kept in an HdrHistogram (3 significant
/// digits, 1 µs .. 10 min). A value type: each worker records into its own and the results are
/// merged with `merge(_:)`, so recording needs no lock.
struct LatencyHistogram: Sendable {
    private(set) var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1,
                                                   highestTrackableValue: 600_000_000,
                                                   numberOfSignificantValueDigits: .three)
    private(set) var errors: Int = 0

    var count: UInt64 { histogram.totalCount }

    /// Records one request that took `nanos` nanoseconds (values are clamped to the range).
    mutating func record(nanos: UInt64) {
        let micros = max(1, min(nanos / 1_000, 600_000_000))
        _ = histogram.record(micros)
    }

    /// Records one request that started at `start` (a `monotonicNanos()` value) and ends now.
    mutating func recordSince(_ start: UInt64) {
        record(nanos: monotonicNanos() &- start)
    }

    mutating func recordError() { errors += 1 }

    mutating func merge(_ other: LatencyHistogram) {
        histogram.add(other.histogram)
        errors += other.errors
    }

    /// Runs `workers` concurrent tasks (`work` gets the worker's index) and merges the
    /// histograms they return.
    static func merged(workers: Int,
                       _ work: @escaping @Sendable (Int) async throws -> LatencyHistogram) async throws -> LatencyHistogram {
        try await withThrowingTaskGroup(of: LatencyHistogram.self) { group in
            for w in 0..<workers { group.addTask { try await work(w) } }
            var all = LatencyHistogram()
            for try await h in group { all.merge(h) }
            return all
        }
    }

    /// Percentiles in milliseconds plus a compact CDF for charts.
    func summary() -> LatencySummary {
        guard count > 0 else {
            return LatencySummary(count: 0, errors: errors, meanMs: 0, stddevMs: 0, p50Ms: 0, p90Ms: 0,
                                  p99Ms: 0, p999Ms: 0, maxMs: 0, cdf: [])
        }
        func ms(_ p: Double) -> Double { Double(histogram.valueAtPercentile(p)) / 1_000 }
        let cdfPoints: [Double] = [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100]
        let cdf = cdfPoints.map { [$0, ms($0)] }
        return LatencySummary(count: count, errors: errors,
                              meanMs: histogram.mean / 1_000, stddevMs: histogram.stdDeviation / 1_000,
                              p50Ms: ms(50), p90Ms: ms(90), p99Ms: ms(99), p999Ms: ms(99.9),
                              maxMs: Double(histogram.max) / 1_000, cdf: cdf)
    }
}
