import EtcdProto
import MVCC

/// Applies log entries to the store. Confined to the applier (one thread at a time).
final class StateMachine: @unchecked Sendable {
    let store: MVCCStore
    let leases: Lessor
    let auth: AuthStore
    let alarms: AlarmList

    init(store: MVCCStore, leases: Lessor, auth: AuthStore, alarms: AlarmList) {
        self.store = store
        self.leases = leases
        self.auth = auth
        self.alarms = alarms
    }

    var writer: StoreWriter { store.writer }

    /// Brings derived in-memory state back to the committed store after a failed group.
    func resyncAfterRollback() {
        try? leases.reload(from: store)
        try? auth.reload(from: store)
        try? alarms.reload(from: store)
    }

    /// Set when an entry failed after it began changing the store (a store failure, not a
    /// request error): the applier must roll the whole group back and fail it.
    var groupFailure: EtcdError?

    /// Applies one entry. Returns its result, or nil when the state machine has taken over
    /// `complete` (physical compaction: it completes once the old records are deleted). A
    /// failing entry changes nothing.
    func apply(_ entry: LogEntry, complete: @escaping ApplyCompletion) -> Result<ApplyResponse, EtcdError>? {
        do throws(EtcdError) {
            switch entry.request {
            case .put(let p):
                try KVApply.precheck(p, writer, leases)
                writer.beginTxn()
                var resp: Etcdserverpb_PutResponse
                do { resp = try KVApply.put(p, writer, leases) } catch { writer.endTxn(); groupFailure = error; throw error }
                resp.header.revision = writer.endTxn()
                return .success(.put(resp))

            case .deleteRange(let d):
                writer.beginTxn()
                var resp: Etcdserverpb_DeleteRangeResponse
                do { resp = try KVApply.deleteRange(d, writer, leases) } catch { writer.endTxn(); groupFailure = error; throw error }
                resp.header.revision = writer.endTxn()
                return .success(.deleteRange(resp))

            case .txn(let t):
                let path = TxnExecution.path(t, writer)
                if TxnExecution.isWrite(t) {
                    var p = path[...]
                    try TxnExecution.visitPath(t, &p) { (op) throws(EtcdError) in
                        if case .requestPut(let put) = op.request { try KVApply.precheck(put, writer, leases, inTxn: true) }
                    }
                }
                try TxnExecution.checkRanges(t, path, writer)
                writer.beginTxn()
                var slice = path[...]
                var resp: Etcdserverpb_TxnResponse
                do {
                    resp = try TxnExecution.execute(t, &slice, reader: writer, writer: writer, leases: leases)
                } catch {
                    // Only store failures get here (pre-checks passed): the group will fail.
                    writer.endTxn()
                    groupFailure = error
                    throw error
                }
                resp.header.revision = writer.endTxn()
                return .success(.txn(resp))

            case .leaseGrant(let g):
                if g.ttl > Lessor.maxTTL { throw .leaseTTLTooLarge }
                var resp = Etcdserverpb_LeaseGrantResponse()
                resp.ttl = try leases.grant(g.id, ttl: g.ttl, writer: writer)
                resp.id = g.id
                resp.header.revision = writer.currentRevision
                return .success(.leaseGrant(resp))

            case .auth(let mutation):
                try auth.apply(mutation, writer: writer)
                return .success(.auth(revision: writer.currentRevision))

            case .identified(let identity, let request):
                // Checked again against the auth state at this index (AuthApplyCheck.swift).
                if let refusal = auth.refusal(of: request, by: identity, leases: leases) { throw refusal }
                return apply(LogEntry(index: entry.index, request: request), complete: complete)

            case .authenticate(let grant):
                return .success(.authenticate(token: try auth.register(grant, index: entry.index)))

            case .alarm(let r):
                return .success(.alarm(alarms.apply(r, writer: writer)))

            case .leaseRevoke(let r):
                let keys = try leases.revoke(r.id, writer: writer)
                writer.beginTxn()
                do {
                    for k in keys { try writer.deleteRange(.single(k)) }
                } catch {
                    writer.endTxn()
                    groupFailure = EtcdError(error)
                    throw EtcdError(error)
                }
                var resp = Etcdserverpb_LeaseRevokeResponse()
                resp.header.revision = writer.endTxn()
                return .success(.leaseRevoke(resp))

            case .compact(let c):
                do {
                    if c.physical {
                        try writer.compact(c.revision) {
                            var resp = Etcdserverpb_CompactionResponse()
                            resp.header.revision = self.store.currentRevision
                            complete(.success(.compact(resp)))
                        }
                        return nil
                    }
                    try writer.compact(c.revision)
                } catch {
                    throw EtcdError(error)
                }
                var resp = Etcdserverpb_CompactionResponse()
                resp.header.revision = writer.currentRevision
                return .success(.compact(resp))
            }
        } catch {
            return .failure(error)
        }
    }
}
