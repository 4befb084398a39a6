import Synchronization

/// What compaction did, for /metrics (etcd's etcd_debugging_mvcc_*compaction* families):
/// the time the applier spent compacting the index (`indexPauseMilliseconds`, one observation
/// per compaction), each batch of the physical deletion (`dbPauseMilliseconds`), each whole
/// physical compaction (`totalMilliseconds`) and the records it deleted (`keysCompacted`).
/// Buckets are etcd's. Thread-safe.
public final class CompactionStats: Sendable {
    /// etcd: ExponentialBuckets(0.5, 2, 14).
    public let indexPauseMilliseconds = ValueHistogram(bounds: (0..<14).map { 0.5 * Double(1 << $0) })
    /// etcd: ExponentialBuckets(1, 2, 13).
    public let dbPauseMilliseconds = ValueHistogram(bounds: (0..<13).map { Double(1 << $0) })
    /// etcd: ExponentialBuckets(100, 2, 14).
    public let totalMilliseconds = ValueHistogram(bounds: (0..<14).map { 100 * Double(1 << $0) })
    private let keys = Atomic<UInt64>(0)

    public var keysCompacted: UInt64 { keys.load(ordering: .relaxed) }

    func recordKeysDeleted(_ n: Int) {
        if n > 0 { keys.wrappingAdd(UInt64(n), ordering: .relaxed) }
    }

    static func milliseconds(_ d: Duration) -> Double {
        let (s, atto) = d.components
        return Double(s) * 1000 + Double(atto) / 1e15
    }
}

/// A histogram of plain numbers with fixed upper bounds (Prometheus' cumulative `le` buckets
/// are derived when read). Thread-safe: one short lock per observation.
public final class ValueHistogram: Sendable {
    public let bounds: [Double]

    public struct Snapshot: Sendable, Equatable {
        public var bounds: [Double]
        /// Observations ≤ each bound, cumulative, same order as `bounds`.
        public var cumulativeCounts: [UInt64]
        public var count: UInt64
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

    public func observe(_ value: Double) {
        let bucket = bounds.firstIndex { value <= $0 } ?? bounds.count
        counts.withLock { c in
            c.perBucket[bucket] &+= 1
            c.sum += value
        }
    }

    public var snapshot: Snapshot {
        let c = counts.withLock { $0 }
        var cumulative: [UInt64] = []
        var running: UInt64 = 0
        for i in bounds.indices {
            running &+= c.perBucket[i]
            cumulative.append(running)
        }
        return Snapshot(bounds: bounds, cumulativeCounts: cumulative, count: running &+ c.perBucket[bounds.count], sum: c.sum)
    }
}
