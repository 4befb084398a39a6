import Synchronization

/// A histogram of durations with fixed upper bounds (Prometheus' cumulative `le` buckets are
/// derived when read). Thread-safe; `observe` takes one uncontended lock, cheap enough for the
/// applier's once-per-group-commit use.
public final class DurationHistogram: Sendable {
    /// Upper bounds in seconds, ascending (an implicit +Inf bucket follows).
    public let bounds: [Double]

    /// A consistent copy of the histogram.
    public struct Snapshot: Sendable, Equatable {
        /// The histogram's upper bounds in seconds.
        public var bounds: [Double]
        /// Observations ≤ each bound, cumulative (Prometheus `le` buckets), same order as `bounds`.
        public var cumulativeCounts: [UInt64]
        /// All observations (the +Inf bucket).
        public var count: UInt64
        /// Sum of the observed durations, in seconds.
        public var sumSeconds: Double
    }

    private struct Counts {
        var perBucket: [UInt64]   // bounds.count + 1 (last: above every bound)
        var sumNanoseconds: UInt64 = 0
    }
    private let counts: Mutex<Counts>

    public init(bounds: [Double]) {
        precondition(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 }, "bounds must ascend")
        self.bounds = bounds
        counts = Mutex(Counts(perBucket: Array(repeating: 0, count: bounds.count + 1)))
    }

    /// etcd's disk histograms (WAL fsync, backend commit): 1 ms doubling 14 times (to 8.192 s),
    /// Prometheus' ExponentialBuckets(0.001, 2, 14).
    public static func etcdDiskBuckets() -> DurationHistogram {
        DurationHistogram(bounds: (0..<14).map { 0.001 * Double(1 << $0) })
    }

    public func observe(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let nanoseconds = UInt64(max(0, seconds)) &* 1_000_000_000 &+ UInt64(max(0, attoseconds / 1_000_000_000))
        let value = Double(nanoseconds) / 1e9
        let bucket = bounds.firstIndex { value <= $0 } ?? bounds.count
        counts.withLock { c in
            c.perBucket[bucket] &+= 1
            c.sumNanoseconds &+= nanoseconds
        }
    }

    public var snapshot: Snapshot {
        let c = counts.withLock { $0 }
        var cumulative: [UInt64] = []
        cumulative.reserveCapacity(bounds.count)
        var running: UInt64 = 0
        for i in bounds.indices {
            running += c.perBucket[i]
            cumulative.append(running)
        }
        return Snapshot(bounds: bounds, cumulativeCounts: cumulative, count: running + c.perBucket[bounds.count],
                        sumSeconds: Double(c.sumNanoseconds) / 1e9)
    }
}
