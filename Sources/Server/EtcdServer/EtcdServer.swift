import EngineAPI
import EtcdProto
import MVCC

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
    private let applier: Applier
    private let machine: StateMachine

    /// Opens the store on `engine` (rebuilding its index) and starts the applier. The engine
    /// stays owned by the caller: close it after `close()`.
    public init(engine: any StorageEngine, config: EtcdServerConfig) throws(EtcdError) {
        self.config = config
        do { store = try MVCCStore(engine: engine) } catch { throw EtcdError(error) }
        let leases = LeaseAttachments()
        store.read().forEachLeasedKey { key, lease in leases.attach(key, to: lease) }
        machine = StateMachine(store: store, leases: leases)
        applier = Applier(machine: machine, firstIndex: store.appliedIndex + 1,
                          maxEntriesPerCommit: config.maxEntriesPerCommit)
    }

    /// Stops accepting writes (they fail with "etcdserver: server stopped"), finishes the
    /// accepted ones and pending physical compactions. Reads keep working until the engine is
    /// closed. Idempotent.
    public func close() {
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

    // MARK: KV

    /// KV.Range, answered on the caller's thread.
    public func range(_ r: Etcdserverpb_RangeRequest) throws(EtcdError) -> Etcdserverpb_RangeResponse {
        try RequestValidation.check(r)
        var resp: Etcdserverpb_RangeResponse
        do { resp = try RangeExecution.run(r, on: store.read()) } catch { throw EtcdError(error) }
        resp.header = header(revision: resp.header.revision)
        return resp
    }

    /// KV.Put. Completes after the write is durable.
    public func put(_ r: Etcdserverpb_PutRequest,
                    completion: @escaping @Sendable (Result<Etcdserverpb_PutResponse, EtcdError>) -> Void) {
        do throws(EtcdError) {
            try RequestValidation.check(r)
            if RequestValidation.size(r) > config.maxRequestBytes { throw .requestTooLarge }
        } catch {
            return completion(.failure(error))
        }
        applier.submit(.put(r)) { [self] result in
            completion(result.map { response in
                guard case .put(var p) = response else { preconditionFailure("put answered with \(response)") }
                p.header = header(revision: p.header.revision)
                return p
            })
        }
    }

    /// KV.DeleteRange. Completes after the write is durable.
    public func deleteRange(_ r: Etcdserverpb_DeleteRangeRequest,
                            completion: @escaping @Sendable (Result<Etcdserverpb_DeleteRangeResponse, EtcdError>) -> Void) {
        do throws(EtcdError) {
            try RequestValidation.check(r)
            if RequestValidation.size(r) > config.maxRequestBytes { throw .requestTooLarge }
        } catch {
            return completion(.failure(error))
        }
        applier.submit(.deleteRange(r)) { [self] result in
            completion(result.map { response in
                guard case .deleteRange(var d) = response else { preconditionFailure("deleteRange answered with \(response)") }
                d.header = header(revision: d.header.revision)
                return d
            })
        }
    }

    /// KV.Txn. A txn that cannot write (no put/delete in any branch) is answered before this
    /// returns, from the committed state; others complete after the write is durable.
    public func txn(_ r: Etcdserverpb_TxnRequest,
                    completion: @escaping @Sendable (Result<Etcdserverpb_TxnResponse, EtcdError>) -> Void) {
        do throws(EtcdError) {
            try RequestValidation.check(r, maxTxnOps: config.maxTxnOps)
            if RequestValidation.size(r) > config.maxRequestBytes { throw .requestTooLarge }
            if !TxnExecution.isWrite(r) {
                var resp = try TxnExecution.runReadOnly(r, store.read())
                resp.header = header(revision: resp.header.revision)
                return completion(.success(resp))
            }
        } catch {
            return completion(.failure(error))
        }
        applier.submit(.txn(r)) { [self] result in
            completion(result.map { response in
                guard case .txn(var t) = response else { preconditionFailure("txn answered with \(response)") }
                t.header = header(revision: t.header.revision)
                return t
            })
        }
    }

    /// KV.Compact. Errors: revision <= the last compaction → "mvcc: required revision has been
    /// compacted"; above the current revision → "mvcc: required revision is a future revision".
    /// Completes when the compaction is durable (with `physical`: once old records are deleted).
    public func compact(_ r: Etcdserverpb_CompactionRequest,
                        completion: @escaping @Sendable (Result<Etcdserverpb_CompactionResponse, EtcdError>) -> Void) {
        applier.submit(.compact(r)) { [self] result in
            completion(result.map { response in
                guard case .compact(var c) = response else { preconditionFailure("compact answered with \(response)") }
                c.header = header(revision: c.header.revision)
                return c
            })
        }
    }
}
