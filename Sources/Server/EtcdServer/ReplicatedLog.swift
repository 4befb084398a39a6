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
}

/// What a `ReplicatedLog` may do to the member it serves: apply the shared log's entries in
/// order, learn how far the member got, and switch lease expiry on (for the one member that
/// decides expiry for the whole cluster) or off.
public struct LogApplier: Sendable {
    let applier: Applier
    let lessor: Lessor
    let expiry: LeaseExpirySwitch
    let appliedIndexNow: @Sendable () -> UInt64

    /// The index of the last entry applied and durable in the local store.
    public var appliedIndex: UInt64 { appliedIndexNow() }

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
}

/// Whether this member submits revoke entries for expired leases (always, when single-member).
final class LeaseExpirySwitch: Sendable {
    let enabled: Atomic<Bool>
    init(_ on: Bool) { enabled = Atomic(on) }
}
