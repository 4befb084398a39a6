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
