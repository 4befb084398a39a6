import Auth
import EtcdProto

/// A request that changes state, as an entry of the ordered log. Entries are applied one by one
/// in index order by `StateMachine`, deterministically: the result depends only on the state
/// and the entry, so a replicated log (raft) can later replace the local queue unchanged.
public enum ApplyRequest: Sendable {
    case put(Etcdserverpb_PutRequest)
    case deleteRange(Etcdserverpb_DeleteRangeRequest)
    case txn(Etcdserverpb_TxnRequest)
    case compact(Etcdserverpb_CompactionRequest)
    /// The ID is chosen before the entry is appended (never 0 here), so applying is deterministic.
    case leaseGrant(Etcdserverpb_LeaseGrantRequest)
    case leaseRevoke(Etcdserverpb_LeaseRevokeRequest)
    /// Passwords arrive hashed, so applying is deterministic.
    case auth(AuthState.Mutation)
    /// Alarm ACTIVATE / DEACTIVATE (`AlarmList.apply`); GET is answered without the log.
    case alarm(Etcdserverpb_AlarmRequest)
    /// A request with the identity it was authorized as when it arrived (etcd's RequestHeader
    /// username + auth_revision): applying checks it again against the auth state at this
    /// point of the log before applying the request (`AuthStore.refusal`).
    indirect case identified(RequestIdentity, ApplyRequest)
    /// Cluster mode, simple tokens: Authenticate's token, registered on every member.
    case authenticate(SimpleTokenGrant)
}

/// The result of applying an entry.
public enum ApplyResponse: Sendable {
    case put(Etcdserverpb_PutResponse)
    case deleteRange(Etcdserverpb_DeleteRangeResponse)
    case txn(Etcdserverpb_TxnResponse)
    case compact(Etcdserverpb_CompactionResponse)
    case leaseGrant(Etcdserverpb_LeaseGrantResponse)
    case leaseRevoke(Etcdserverpb_LeaseRevokeResponse)
    /// An auth change was applied; the store revision it was applied at.
    case auth(revision: Int64)
    case alarm(Etcdserverpb_AlarmResponse)
    /// The token registered on every member; nil when the auth state changed since the
    /// password was checked (the proposer checks it again).
    case authenticate(token: String?)
}

/// One log entry: its position (1, 2, …; persisted with the store as the applied index) and
/// its request. Term-less for now (single member).
public struct LogEntry: Sendable {
    public var index: UInt64
    public var request: ApplyRequest
}

public typealias ApplyCompletion = @Sendable (Result<ApplyResponse, EtcdError>) -> Void
