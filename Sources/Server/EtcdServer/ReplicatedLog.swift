import Dispatch
import Synchronization

/// The cluster-mode boundary: a log shared by several members that orders every member's writes.
///
/// Without one (the default) the server's own `Applier` is the log: it numbers entries in
/// submission order and applies them. With one, every write is `propose`d to it; the log
/// implementation (Sources/Server/ClusterLog) appends it to the shared order and feeds every
/// entry of that order, from every member, back to this member through `LogApplier.apply`, in
/// index order. Because applying is deterministic, all members reach the same revisions.
public protocol ReplicatedLog: AnyObject, Sendable {
    /// Orders `request` after every entry already committed to the shared log. `complete` runs
    /// once THIS member has applied the entry (its result computed at apply time), or with
    /// `EtcdError.timeout` when that cannot be known in time. It must not block.
    func propose(_ request: ApplyRequest, size: Int, complete: @escaping ApplyCompletion)
    /// Calls `ready(nil)` once this member has applied every entry committed before the call
    /// (the read index of a linearizable read), or `ready(error)` (etcd's request timed out).
    func waitForReadIndex(_ ready: @escaping @Sendable (EtcdError?) -> Void)
    /// Stops appending and tailing; pending proposals fail with "etcdserver: server stopped".
    func stop()
    /// A keep-alive renewed lease `id` on this member (its deadline is now + `ttl` seconds
    /// here): the log makes the renewal known to every member, so that the member deciding
    /// expiry keeps the lease and every member answers LeaseTimeToLive alike. Must not block.
    func leaseRenewed(_ id: Int64, ttl: Int64)
    /// The member deciding expiry found `ids` past their deadlines (marked as being revoked):
    /// the log checks whether another member renewed them meanwhile (their deadlines move
    /// forward and their mark is cleared) and calls `revoke` with the others, the leases to
    /// revoke now. When it cannot tell, it clears their marks (retried at the next check) and
    /// calls `revoke([])`.
    func confirmExpired(_ ids: [Int64], revoke: @escaping @Sendable ([Int64]) -> Void)
}

extension ReplicatedLog {
    /// A log whose members all see every keep-alive (or that has one member) needs nothing.
    public func leaseRenewed(_ id: Int64, ttl: Int64) {}
    public func confirmExpired(_ ids: [Int64], revoke: @escaping @Sendable ([Int64]) -> Void) { revoke(ids) }
}

/// What a `ReplicatedLog` may do to the member it serves: apply the shared log's entries in
/// order, learn how far the member got, and switch lease expiry on (for the one member that
/// decides expiry for the whole cluster) or off.
public struct LogApplier: Sendable {
    let applier: Applier
    let lessor: Lessor
    let expiry: LeaseExpirySwitch
    let appliedIndexNow: @Sendable () -> UInt64
    let durableIndexNow: @Sendable () -> UInt64

    /// The index of the last entry applied in the local store and visible to its readers
    /// (durable too, unless the member runs without local fsync: see `durableAppliedIndex`).
    public var appliedIndex: UInt64 { appliedIndexNow() }

    /// The index up to which this member's applied entries are on stable storage: equal to
    /// `appliedIndex` with `--cluster-local-fsync`, up to about a second behind it without
    /// (the default on lmdb and lsm members; docs/cluster.md "Local fsync"). After a machine crash the
    /// member resumes at or above it, so the log must keep every entry above the smallest
    /// durable index of the members (this is what the heartbeat reports for trimming).
    public var durableAppliedIndex: UInt64 { durableIndexNow() }

    /// Applies the shared log's entry `index`; it must be exactly the one after the last entry
    /// given (entries are never skipped or repeated). Returns false, changing nothing, when it
    /// is not. `complete` runs on the applier's thread once the entry is applied and durable.
    public func apply(index: UInt64, request: ApplyRequest, size: Int, complete: @escaping ApplyCompletion) -> Bool {
        applier.submit(index: index, request, size: size, complete: complete)
    }

    /// Makes this member the one that revokes expired leases (true) or not (false). Taking the
    /// role gives every lease its full TTL again from now, as etcd's new leader does, so no
    /// lease expires early because the previous holder's keep-alives were not seen here.
    public func setLeaseExpiry(_ enabled: Bool) {
        if enabled { lessor.refreshAllDeadlines() }
        expiry.enabled.store(enabled, ordering: .relaxed)
    }

    /// Whether this member currently decides lease expiry.
    public var decidesLeaseExpiry: Bool { expiry.enabled.load(ordering: .relaxed) }

    /// Renewals made on other members: each lease lives at least that many milliseconds from
    /// now (bounded by its TTL; a pending expiry is cancelled). Returns the IDs still alive.
    public func leasesRenewedElsewhere(_ renewals: [(id: Int64, remainingMilliseconds: Int64)]) -> Set<Int64> {
        var alive = Set<Int64>()
        for r in renewals where lessor.extend(r.id, remainingMilliseconds: r.remainingMilliseconds) { alive.insert(r.id) }
        return alive
    }

    /// Every lease not being revoked, with the milliseconds left until its deadline here.
    public func leaseDeadlines() -> [(id: Int64, milliseconds: Int64)] { lessor.remainingMilliseconds() }

    /// Whether this member has no lease (nothing to learn about renewals).
    public var hasNoLeases: Bool { lessor.isEmpty }

    /// Expired leases whose revocation will not be proposed now: checked again next time.
    public func leaseExpiryDeferred(_ ids: [Int64]) {
        for id in ids { lessor.revocationFailed(id) }
    }
}

/// Whether this member submits revoke entries for expired leases (always, when single-member).
final class LeaseExpirySwitch: Sendable {
    let enabled: Atomic<Bool>
    init(_ on: Bool) { enabled = Atomic(on) }
}
