import EtcdProto
import MVCC
import Synchronization

/// Counts of server events that etcd exports on /metrics, counted where etcd counts them:
///
/// - MVCC operations (etcd_mvcc_{range,put,delete,txn}_total and their etcd_debugging_mvcc_
///   twins, etcd_debugging_mvcc_total_put_size_in_bytes): etcd counts per MVCC transaction the
///   ranges, puts and deletes it did, and one txn when that sum exceeds 1. rusd records the
///   same tallies per successful request (`recordRange`, `recordPut`, `recordDelete`,
///   `recordTxn`), modelling etcd 3.4's transactions: a put or delete with prev_kv (or a put
///   with ignore_value / ignore_lease) also reads the key in the same transaction; a Txn
///   evaluates its compares in a read transaction, then applies the chosen branch in one write
///   transaction (in one read transaction when the branch cannot write).
/// - Proposals that failed (etcd_server_proposals_failed_total): entries whose group commit
///   failed. Slow applies (etcd_server_slow_apply_total): entries whose apply took longer than
///   etcd's 100 ms warning threshold.
/// - Leases (etcd_debugging_lease_*, etcd_debugging_server_lease_expired_total).
///
/// Thread-safe: relaxed atomic adds; the lease TTL histogram takes one short lock per grant.
public final class ServerCounters: Sendable {
    let ranges = Atomic<UInt64>(0)
    let puts = Atomic<UInt64>(0)
    let deletes = Atomic<UInt64>(0)
    let txns = Atomic<UInt64>(0)
    let putBytes = Atomic<UInt64>(0)
    let proposalsFailed = Atomic<UInt64>(0)
    let slowApplies = Atomic<UInt64>(0)
    let leasesGranted = Atomic<UInt64>(0)
    let leasesRevoked = Atomic<UInt64>(0)
    let leasesRenewed = Atomic<UInt64>(0)
    let leasesExpired = Atomic<UInt64>(0)
    /// TTLs of granted leases in seconds: etcd's ExponentialBuckets(1, 2, 24).
    let leaseTTLs = ValueHistogram(bounds: (0..<24).map { Double(UInt64(1) << UInt64($0)) })

    /// Durations of Maintenance.Hash (etcd_mvcc_hash_duration_seconds), HashKV
    /// (etcd_mvcc_hash_rev_duration_seconds), Defragment (etcd_disk_backend_defrag_duration_seconds)
    /// and Snapshot, until the last chunk is sent (etcd_disk_backend_snapshot_duration_seconds);
    /// etcd's buckets. Observed by the Maintenance service with `observe(_:since:)`.
    public let hashSeconds = ValueHistogram(bounds: (0..<15).map { 0.01 * Double(1 << $0) })
    public let hashRevisionSeconds = ValueHistogram(bounds: (0..<15).map { 0.01 * Double(1 << $0) })
    public let defragSeconds = ValueHistogram(bounds: (0..<13).map { 0.1 * Double(1 << $0) })
    public let snapshotSeconds = ValueHistogram(bounds: (0..<17).map { 0.01 * Double(1 << $0) })
    private let defragsRunning = Atomic<Int>(0)

    /// Observes the seconds since `start` in `histogram`.
    public func observe(_ histogram: ValueHistogram, since start: ContinuousClock.Instant) {
        let (s, atto) = (ContinuousClock.now - start).components
        histogram.observe(Double(s) + Double(atto) / 1e18)
    }

    /// Defragmentations in progress (etcd_disk_defrag_inflight): `defragStarted` before one,
    /// `defragEnded` after it, however it ended.
    public var defragsInFlight: Int { defragsRunning.load(ordering: .relaxed) }
    public func defragStarted() { defragsRunning.add(1, ordering: .relaxed) }
    public func defragEnded() { defragsRunning.subtract(1, ordering: .relaxed) }

    /// /health answers (etcd_server_health_success / etcd_server_health_failures).
    private let healthyChecks = Atomic<UInt64>(0)
    private let unhealthyChecks = Atomic<UInt64>(0)

    public func recordHealthCheck(healthy: Bool) {
        if healthy {
            healthyChecks.wrappingAdd(1, ordering: .relaxed)
        } else {
            unhealthyChecks.wrappingAdd(1, ordering: .relaxed)
        }
    }

    public var healthCheckCounts: (healthy: UInt64, unhealthy: UInt64) {
        (healthyChecks.load(ordering: .relaxed), unhealthyChecks.load(ordering: .relaxed))
    }

    /// etcd's apply warning threshold (warnApplyDuration).
    static let slowApplyThreshold = Duration.milliseconds(100)

    /// A copy of every count.
    public struct Snapshot: Sendable {
        public var ranges, puts, deletes, txns, putBytes: UInt64
        public var proposalsFailed, slowApplies: UInt64
        public var leasesGranted, leasesRevoked, leasesRenewed, leasesExpired: UInt64
        public var leaseTTLs: ValueHistogram.Snapshot
    }

    public var snapshot: Snapshot {
        Snapshot(ranges: ranges.load(ordering: .relaxed), puts: puts.load(ordering: .relaxed),
                 deletes: deletes.load(ordering: .relaxed), txns: txns.load(ordering: .relaxed),
                 putBytes: putBytes.load(ordering: .relaxed),
                 proposalsFailed: proposalsFailed.load(ordering: .relaxed),
                 slowApplies: slowApplies.load(ordering: .relaxed),
                 leasesGranted: leasesGranted.load(ordering: .relaxed),
                 leasesRevoked: leasesRevoked.load(ordering: .relaxed),
                 leasesRenewed: leasesRenewed.load(ordering: .relaxed),
                 leasesExpired: leasesExpired.load(ordering: .relaxed),
                 leaseTTLs: leaseTTLs.snapshot)
    }

    /// One MVCC transaction's operations (etcd's metricsTxnWrite.End).
    func recordMVCCTransaction(ranges: Int, puts: Int = 0, deletes: Int = 0, putBytes: Int = 0) {
        if ranges > 0 { self.ranges.wrappingAdd(UInt64(ranges), ordering: .relaxed) }
        if puts > 0 { self.puts.wrappingAdd(UInt64(puts), ordering: .relaxed) }
        if deletes > 0 { self.deletes.wrappingAdd(UInt64(deletes), ordering: .relaxed) }
        if putBytes > 0 { self.putBytes.wrappingAdd(UInt64(putBytes), ordering: .relaxed) }
        if ranges + puts + deletes > 1 { txns.wrappingAdd(1, ordering: .relaxed) }
    }

    func recordPut(_ r: Etcdserverpb_PutRequest) {
        recordMVCCTransaction(ranges: r.prevKv || r.ignoreValue || r.ignoreLease ? 1 : 0, puts: 1,
                              putBytes: r.key.count + r.value.count)
    }

    func recordDelete(_ r: Etcdserverpb_DeleteRangeRequest) {
        recordMVCCTransaction(ranges: r.prevKv ? 1 : 0, deletes: 1)
    }

    /// A Txn that succeeded with `response`: its compares (along the path taken, nested txns
    /// included) in one read transaction, then the operations of the branches taken.
    func recordTxn(_ r: Etcdserverpb_TxnRequest, _ response: Etcdserverpb_TxnResponse, wrote: Bool) {
        var t = Tally()
        t.add(r, response)
        if wrote {
            recordMVCCTransaction(ranges: t.compares)
            recordMVCCTransaction(ranges: t.ranges, puts: t.puts, deletes: t.deletes, putBytes: t.putBytes)
        } else {
            recordMVCCTransaction(ranges: t.compares + t.ranges)
        }
    }

    private struct Tally {
        var compares = 0, ranges = 0, puts = 0, deletes = 0, putBytes = 0

        mutating func add(_ r: Etcdserverpb_TxnRequest, _ response: Etcdserverpb_TxnResponse) {
            compares += r.compare.count
            let ops = response.succeeded ? r.success : r.failure
            for (op, result) in zip(ops, response.responses) {
                switch op.request {
                case .requestRange: ranges += 1
                case .requestPut(let p):
                    puts += 1
                    putBytes += p.key.count + p.value.count
                    if p.prevKv || p.ignoreValue || p.ignoreLease { ranges += 1 }
                case .requestDeleteRange(let d):
                    deletes += 1
                    if d.prevKv { ranges += 1 }
                case .requestTxn(let nested):
                    if case .responseTxn(let nestedResponse) = result.response { add(nested, nestedResponse) }
                case nil: break
                }
            }
        }
    }

    func recordApply(_ duration: Duration) {
        if duration > Self.slowApplyThreshold { slowApplies.wrappingAdd(1, ordering: .relaxed) }
    }

    func recordFailedProposals(_ n: Int) {
        if n > 0 { proposalsFailed.wrappingAdd(UInt64(n), ordering: .relaxed) }
    }

    func recordLeaseGranted(ttl: Int64) {
        leasesGranted.wrappingAdd(1, ordering: .relaxed)
        leaseTTLs.observe(Double(ttl))
    }

    func recordLeaseRevoked(expired: Bool) {
        leasesRevoked.wrappingAdd(1, ordering: .relaxed)
        if expired { leasesExpired.wrappingAdd(1, ordering: .relaxed) }
    }

    func recordLeaseRenewed() {
        leasesRenewed.wrappingAdd(1, ordering: .relaxed)
    }
}
