import Auth
import EngineAPI
import EtcdProto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MVCC
import Dispatch
import Synchronization

/// etcd's server state machine on the MVCC store, independent of the transport.
///
/// The transport (gRPC glue) calls one method per RPC with the decoded request:
///
/// - Reads: `range` answers synchronously on the caller's thread (e.g. the connection's event
///   loop) from the last committed state; it never waits for writes or fsyncs. Serializable and
///   linearizable ranges are the same on a single member: every acknowledged write is visible.
/// - Writes: `put`, `deleteRange`, `txn`, `compact` validate the request (etcd's errors), append
///   it to the ordered log and return at once; `completion` runs later, on the applier's
///   thread, once the write is durable (fsync, shared by every write of the group) and visible
///   to reads. Completions must not block: hop back to your event loop to send the response.
///   A `txn` without puts or deletes in any branch is answered at once, before returning.
///   `compact` with `physical: true` completes after the old records are deleted.
/// - Errors are `EtcdError`: a gRPC status code and etcd's exact message.
/// - Every response's header carries cluster_id, member_id, raft_term and the store revision
///   at which the request was applied (for reads: the current revision).
///
/// Thread-safety: every method may be called from any thread, concurrently.
public final class EtcdServer: Sendable {
    public let config: EtcdServerConfig
    /// The store (read-only use by other services: watch, maintenance).
    public let store: MVCCStore
    let applier: Applier
    private let machine: StateMachine
    /// Leases (read by keep-alive / time-to-live on any thread).
    let lessor: Lessor
    /// Users, roles, permissions and tokens.
    public let auth: AuthStore
    /// The raised alarms (persisted; changed through the log by `alarm(_:completion:)`).
    public let alarms = AlarmList()
    private let expiryTimer: TimerBox
    /// Cluster mode: the shared log that orders writes (nil: the applier is the log).
    private let sharedLog: (any ReplicatedLog)?
    private let leaseExpiry: LeaseExpirySwitch

    /// Opens the store on `engine` (rebuilding its index) and starts the applier. The engine
    /// stays owned by the caller: close it after `close()`.
    ///
    /// `sharedLog` (cluster mode) builds the log that orders writes, given the handle through
    /// which it feeds entries to this member; lease expiry then stays off until the log turns
    /// it on (`LogApplier.setLeaseExpiry`). nil: single member, the local applier is the log.
    public init(engine: any StorageEngine, config: EtcdServerConfig,
                sharedLog: ((LogApplier) throws(EtcdError) -> any ReplicatedLog)? = nil) throws(EtcdError) {
        self.config = config
        do { store = try MVCCStore(engine: engine) } catch { throw EtcdError(error) }
        lessor = Lessor(minTTL: config.minLeaseTTL)
        try lessor.reload(from: store)
        auth = AuthStore(tokens: config.authTokens ?? SimpleTokens(ttlSeconds: config.authTokenTTLSeconds),
                         bcryptCost: config.bcryptCost)
        try auth.reload(from: store)
        try alarms.reload(from: store)
        machine = StateMachine(store: store, leases: lessor, auth: auth, alarms: alarms)
        applier = Applier(machine: machine, firstIndex: store.appliedIndex + 1,
                          maxEntriesPerCommit: config.maxEntriesPerCommit,
                          completionBatch: config.completionBatch)
        leaseExpiry = LeaseExpirySwitch(sharedLog == nil)
        if let sharedLog {
            let store = store
            self.sharedLog = try sharedLog(LogApplier(applier: applier, lessor: lessor, expiry: leaseExpiry,
                                                      appliedIndexNow: { store.appliedIndex },
                                                      durableIndexNow: config.durableAppliedIndex ?? { store.appliedIndex }))
        } else {
            self.sharedLog = nil
        }
        expiryTimer = TimerBox(DispatchSource.makeTimerSource(queue: DispatchQueue(label: "rusd.lease-expiry")))
        let interval = DispatchTimeInterval.milliseconds(max(10, config.leaseExpiryCheckMilliseconds))
        expiryTimer.timer.schedule(deadline: .now() + interval, repeating: interval)
        expiryTimer.timer.setEventHandler { [weak self] in self?.revokeExpiredLeases() }
        expiryTimer.timer.resume()
    }

    deinit {
        expiryTimer.timer.cancel()
    }

    /// Submits a revoke entry for every expired lease (etcd's leader does the same through raft).
    /// In cluster mode the log first checks that no other member renewed them meanwhile.
    private func revokeExpiredLeases() {
        guard leaseExpiry.enabled.load(ordering: .relaxed) else { return }
        let expired = lessor.takeExpired(limit: 1000)
        guard !expired.isEmpty else { return }
        if let sharedLog {
            sharedLog.confirmExpired(expired) { [weak self] ids in self?.proposeRevokes(ids) }
        } else {
            proposeRevokes(expired)
        }
    }

    private func proposeRevokes(_ ids: [Int64]) {
        for id in ids {
            var r = Etcdserverpb_LeaseRevokeRequest()
            r.id = id
            propose(.leaseRevoke(r)) { [lessor, counters] result in
                switch result {
                case .success: counters.recordLeaseRevoked(expired: true)
                case .failure(let e): if e != .leaseNotFound { lessor.revocationFailed(id) }
                }
            }
        }
    }

    /// Stops accepting writes (they fail with "etcdserver: server stopped"), finishes the
    /// accepted ones and pending physical compactions. Reads keep working until the engine is
    /// closed. Idempotent.
    public func close() {
        expiryTimer.timer.cancel()
        sharedLog?.stop()
        applier.stop()
        store.close()
    }

    /// A response header at `revision` with this member's identity.
    public func header(revision: Int64) -> Etcdserverpb_ResponseHeader {
        var h = Etcdserverpb_ResponseHeader()
        h.clusterID = config.clusterID
        h.memberID = config.memberID
        h.raftTerm = config.raftTerm
        h.revision = revision
        return h
    }

    /// The current store revision (committed).
    public var currentRevision: Int64 { store.currentRevision }
    /// Index of the last applied (durable) log entry, etcd's raftAppliedIndex/consistent index.
    public var appliedIndex: UInt64 { store.appliedIndex }
    /// Number of group commits since start (each is one synced engine write).
    public var groupCommitCount: Int { applier.groupCommits }
    /// Durations of the applier's synced engine writes (one per successful group commit):
    /// rusd's equivalent of both etcd's WAL fsync and its backend commit.
    public var commitDurations: ValueHistogram.Snapshot { applier.commitDurations.snapshot }
    /// Counts of MVCC operations, failed proposals, slow applies and lease events (/metrics).
    public var counters: ServerCounters { applier.counters }

    /// Orders a write: through the shared log in cluster mode, else straight to the applier.
    @inline(__always)
    func propose(_ request: ApplyRequest, size: Int = 64, complete: @escaping ApplyCompletion) {
        if let sharedLog {
            sharedLog.propose(request, size: size, complete: complete)
        } else {
            applier.submit(request, size: size, complete: complete)
        }
    }

    /// Cluster mode: whether a linearizable read must first wait for the read index
    /// (`waitForReadIndex`). Single member: false, every acknowledged write is already visible.
    public var readsNeedReadIndex: Bool { sharedLog != nil }

    /// Calls `ready(nil)` once this member has applied every write committed before the call
    /// (at once when single-member), or `ready(error)` with etcd's request timed out.
    public func waitForReadIndex(_ ready: @escaping @Sendable (EtcdError?) -> Void) {
        guard let sharedLog else { return ready(nil) }
        sharedLog.waitForReadIndex(ready)
    }

    // MARK: KV

    /// KV.Range, answered on the caller's thread.
    public func range(_ r: Etcdserverpb_RangeRequest) throws(EtcdError) -> Etcdserverpb_RangeResponse {
        try RequestValidation.check(r)
        var resp: Etcdserverpb_RangeResponse
        do {
            resp = try RangeExecution.run(r, on: store.read())
        } catch .compacted where r.revision <= 0 {
            // A physical compaction removed a record between taking the snapshot and reading
            // it; a current read is never compacted: read again from a fresh snapshot.
            do { resp = try RangeExecution.run(r, on: store.read()) } catch { throw EtcdError(error) }
        } catch {
            throw EtcdError(error)
        }
        resp.header = header(revision: resp.header.revision)
        counters.recordMVCCTransaction(ranges: 1)
        return resp
    }

    /// KV.Put. Completes after the write is durable. `caller` (checked on arrival) is checked
    /// again when the entry is applied (AuthApplyCheck.swift); nil: not checked.
    public func put(_ r: Etcdserverpb_PutRequest, caller: AuthCaller? = nil,
                    completion: @escaping @Sendable (Result<Etcdserverpb_PutResponse, EtcdError>) -> Void) {
        let size = RequestValidation.size(r)
        do throws(EtcdError) {
            try RequestValidation.check(r)
            if size > config.maxRequestBytes { throw .requestTooLarge }
        } catch {
            return completion(.failure(error))
        }
        propose(ApplyRequest.put(r).withIdentity(of: caller), size: size) { [self] result in
            completion(result.map { response in
                guard case .put(var p) = response else { preconditionFailure("put answered with \(response)") }
                counters.recordPut(r)
                p.header = header(revision: p.header.revision)
                return p
            })
        }
    }

    /// KV.DeleteRange. Completes after the write is durable. `caller`: as for `put`.
    public func deleteRange(_ r: Etcdserverpb_DeleteRangeRequest, caller: AuthCaller? = nil,
                            completion: @escaping @Sendable (Result<Etcdserverpb_DeleteRangeResponse, EtcdError>) -> Void) {
        let size = RequestValidation.size(r)
        do throws(EtcdError) {
            try RequestValidation.check(r)
            if size > config.maxRequestBytes { throw .requestTooLarge }
        } catch {
            return completion(.failure(error))
        }
        propose(ApplyRequest.deleteRange(r).withIdentity(of: caller), size: size) { [self] result in
            completion(result.map { response in
                guard case .deleteRange(var d) = response else { preconditionFailure("deleteRange answered with \(response)") }
                counters.recordDelete(r)
                d.header = header(revision: d.header.revision)
                return d
            })
        }
    }

    /// KV.Txn. A txn that cannot write (no put/delete in any branch) is answered before this
    /// returns, from the committed state; others complete after the write is durable.
    /// `caller`: as for `put` (a read-only txn is checked on arrival only, as a Range).
    public func txn(_ r: Etcdserverpb_TxnRequest, caller: AuthCaller? = nil,
                    completion: @escaping @Sendable (Result<Etcdserverpb_TxnResponse, EtcdError>) -> Void) {
        let size = RequestValidation.size(r)
        do throws(EtcdError) {
            try RequestValidation.check(r, maxTxnOps: config.maxTxnOps)
            if size > config.maxRequestBytes { throw .requestTooLarge }
            if !TxnExecution.isWrite(r) {
                if let sharedLog {
                    // Cluster mode: a read-only txn is a linearizable read (read index first).
                    return sharedLog.waitForReadIndex { [self] error in
                        if let error { return completion(.failure(error)) }
                        completion(readOnlyTxn(r))
                    }
                }
                return completion(readOnlyTxn(r))
            }
        } catch {
            return completion(.failure(error))
        }
        propose(ApplyRequest.txn(r).withIdentity(of: caller), size: size) { [self] result in
            completion(result.map { response in
                guard case .txn(var t) = response else { preconditionFailure("txn answered with \(response)") }
                counters.recordTxn(r, t, wrote: true)
                t.header = header(revision: t.header.revision)
                return t
            })
        }
    }

    private func readOnlyTxn(_ r: Etcdserverpb_TxnRequest) -> Result<Etcdserverpb_TxnResponse, EtcdError> {
        do throws(EtcdError) {
            var resp = try TxnExecution.runReadOnly(r, store.read())
            counters.recordTxn(r, resp, wrote: false)
            resp.header = header(revision: resp.header.revision)
            return .success(resp)
        } catch {
            return .failure(error)
        }
    }

    /// KV.Compact. Errors: revision <= the last compaction → "mvcc: required revision has been
    /// compacted"; above the current revision → "mvcc: required revision is a future revision".
    /// Completes when the compaction is durable (with `physical`: once old records are deleted).
    public func compact(_ r: Etcdserverpb_CompactionRequest,
                        completion: @escaping @Sendable (Result<Etcdserverpb_CompactionResponse, EtcdError>) -> Void) {
        propose(.compact(r)) { [self] result in
            completion(result.map { response in
                guard case .compact(var c) = response else { preconditionFailure("compact answered with \(response)") }
                c.header = header(revision: c.header.revision)
                return c
            })
        }
    }

    // MARK: Alarm

    /// Maintenance.Alarm ACTIVATE / DEACTIVATE through the log, as etcd's raft request: every
    /// member applies it and persists the change; completes once durable with the alarm
    /// changed (or nothing). GET reads `alarms` directly.
    public func alarm(_ r: Etcdserverpb_AlarmRequest,
                      completion: @escaping @Sendable (Result<Etcdserverpb_AlarmResponse, EtcdError>) -> Void) {
        propose(.alarm(r)) { result in
            completion(result.map { response in
                guard case .alarm(let a) = response else { preconditionFailure("alarm answered with \(response)") }
                return a
            })
        }
    }

    // MARK: Lease

    /// Lease.LeaseGrant. ID 0 → the server picks one. TTL below the minimum is raised to it;
    /// above etcd's maximum → "etcdserver: too large lease TTL"; an existing ID → "etcdserver:
    /// lease already exists". Completes once the grant is durable.
    public func leaseGrant(_ r: Etcdserverpb_LeaseGrantRequest,
                           completion: @escaping @Sendable (Result<Etcdserverpb_LeaseGrantResponse, EtcdError>) -> Void) {
        var r = r
        if r.id == 0 { r.id = Int64.random(in: 1 ... Int64.max) }
        propose(.leaseGrant(r)) { [self] result in
            completion(result.map { response in
                guard case .leaseGrant(var g) = response else { preconditionFailure("leaseGrant answered with \(response)") }
                counters.recordLeaseGranted(ttl: g.ttl)
                g.header = header(revision: g.header.revision)
                return g
            })
        }
    }

    /// Lease.LeaseRevoke: deletes every attached key in ONE revision, then the lease.
    /// Unknown lease → "etcdserver: requested lease not found". Completes once durable.
    /// `caller`: as for `put` (the lease's keys are checked again when applied).
    public func leaseRevoke(_ r: Etcdserverpb_LeaseRevokeRequest, caller: AuthCaller? = nil,
                            completion: @escaping @Sendable (Result<Etcdserverpb_LeaseRevokeResponse, EtcdError>) -> Void) {
        propose(ApplyRequest.leaseRevoke(r).withIdentity(of: caller)) { [self] result in
            completion(result.map { response in
                guard case .leaseRevoke(var v) = response else { preconditionFailure("leaseRevoke answered with \(response)") }
                counters.recordLeaseRevoked(expired: false)
                v.header = header(revision: v.header.revision)
                return v
            })
        }
    }

    /// One LeaseKeepAlive request of the stream, answered on the caller's thread: the deadline
    /// becomes now + TTL and the response carries the TTL; an unknown or expired lease gets
    /// TTL 0 (as etcd answers on the stream).
    public func leaseKeepAlive(_ r: Etcdserverpb_LeaseKeepAliveRequest) -> Etcdserverpb_LeaseKeepAliveResponse {
        var resp = Etcdserverpb_LeaseKeepAliveResponse()
        resp.id = r.id
        resp.ttl = lessor.renew(r.id) ?? 0
        if resp.ttl > 0 {
            counters.recordLeaseRenewed()
            sharedLog?.leaseRenewed(r.id, ttl: resp.ttl)
        }
        resp.header = header(revision: store.currentRevision)
        return resp
    }

    /// Lease.LeaseTimeToLive, answered on the caller's thread. Unknown lease → TTL -1 (etcd).
    public func leaseTimeToLive(_ r: Etcdserverpb_LeaseTimeToLiveRequest) -> Etcdserverpb_LeaseTimeToLiveResponse {
        var resp = Etcdserverpb_LeaseTimeToLiveResponse()
        resp.header = header(revision: store.currentRevision)
        resp.id = r.id
        guard let t = lessor.timeToLive(r.id) else {
            resp.ttl = -1
            return resp
        }
        resp.ttl = t.remaining
        resp.grantedTtl = t.granted
        if r.keys { resp.keys = t.keys.map { Data($0) } }
        return resp
    }

    /// Lease.LeaseLeases, answered on the caller's thread.
    public func leaseLeases(_ r: Etcdserverpb_LeaseLeasesRequest) -> Etcdserverpb_LeaseLeasesResponse {
        var resp = Etcdserverpb_LeaseLeasesResponse()
        resp.header = header(revision: store.currentRevision)
        resp.leases = lessor.ids.map { id in
            var s = Etcdserverpb_LeaseStatus()
            s.id = id
            return s
        }
        return resp
    }
}

/// A dispatch timer owned by one object; DispatchSource methods are thread-safe.
final class TimerBox: @unchecked Sendable {
    let timer: DispatchSourceTimer
    init(_ t: DispatchSourceTimer) { timer = t }
}
