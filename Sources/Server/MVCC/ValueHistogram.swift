import Synchronization

/// A histogram of numbers with fixed upper bounds (Prometheus' cumulative `le` buckets are
/// derived when read): every histogram on /metrics, durations in seconds or milliseconds and
/// plain values (lease TTLs). Thread-safe: one short uncontended lock per observation, cheap
/// enough for once-per-group-commit and once-per-request use.
public final class ValueHistogram: Sendable {
    /// Upper bounds, ascending (an implicit +Inf bucket follows).
    public let bounds: [Double]

    /// A consistent copy of the histogram.
    public struct Snapshot: Sendable, Equatable {
        public var bounds: [Double]
        /// Observations ≤ each bound, cumulative, same order as `bounds`.
        public var cumulativeCounts: [UInt64]
        /// All observations (the +Inf bucket).
        public var count: UInt64
        /// Sum of the observed values.
        public var sum: Double
    }

    private struct Counts {
        var perBucket: [UInt64]   // bounds.count + 1 (last: above every bound)
        var sum: Double = 0
    }
    private let counts: Mutex<Counts>

    /// `bounds` must ascend (a programming error otherwise; never client input).
    public init(bounds: [Double]) {
        precondition(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 }, "bounds must ascend")
        self.bounds = bounds
        counts = Mutex(Counts(perBucket: Array(repeating: 0, count: bounds.count + 1)))
    }

    /// etcd's disk histograms (WAL fsync, backend commit), in seconds: 1 ms doubling 14 times
    /// (to 8.192 s), Prometheus' ExponentialBuckets(0.001, 2, 14).
    public static func etcdDiskBuckets() -> ValueHistogram {
        ValueHistogram(bounds: (0..<14).map { 0.001 * Double(1 << $0) })
    }

    public func observe(_ value: Double) {
        let bucket = bounds.firstIndex { value <= $0 } ?? bounds.count
        counts.withLock { c in
            c.perBucket[bucket] &+= 1
            c.sum += value
        }
    }

    /// Observes `duration` in seconds (negative durations count as 0).
    public func observe(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        observe(max(0, Double(seconds) + Double(attoseconds) / 1e18))
    }

    public var snapshot: Snapshot {
        let c = counts.withLock { $0 }
        var cumulative: [UInt64] = []
        cumulative.reserveCapacity(bounds.count)
        var running: UInt64 = 0
        for i in bounds.indices {
            running &+= c.perBucket[i]
            cumulative.append(running)
        }
        return Snapshot(bounds: bounds, cumulativeCounts: cumulative, count: running &+ c.perBucket[bounds.count], sum: c.sum)
    }
}
