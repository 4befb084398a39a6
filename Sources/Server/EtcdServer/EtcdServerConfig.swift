import Auth

/// Settings of the etcd server state machine (the subset of etcd's flags it needs).
public struct EtcdServerConfig: Sendable {
    /// Reported in every response header.
    public var clusterID: UInt64
    public var memberID: UInt64
    /// Reported as `raft_term` (a single member that won its first election reports 2, as etcd).
    public var raftTerm: UInt64 = 2
    /// --max-request-bytes (etcd default 1.5 MiB): larger write requests fail with
    /// "etcdserver: request is too large".
    public var maxRequestBytes: Int = 1_572_864
    /// --max-txn-ops (etcd default 128).
    public var maxTxnOps: Int = 128
    /// Smallest lease TTL granted, in seconds (etcd: 1.5 × election timeout, rounded up: 2 s
    /// with the default 1 s election timeout). Shorter requested TTLs are raised to it.
    public var minLeaseTTL: Int64 = 2
    /// How often expired leases are looked for (each found one is revoked through the log).
    public var leaseExpiryCheckMilliseconds: Int = 500
    /// Most log entries applied in one group commit (bounds latency and memory of a group).
    public var maxEntriesPerCommit: Int = 4096
    /// Wraps the completions of each group commit (all run inside one call, on the applier's
    /// thread): the transport can hold back its thread hand-offs until the whole group is
    /// completed and then hand them over at once. nil: completions just run.
    public var completionBatch: (@Sendable (() -> Void) -> Void)?

    /// --auth-token-ttl: seconds a simple token lives after its last use (etcd: 300).
    public var authTokenTTLSeconds: Int = 300
    /// --auth-token: how tokens are issued and checked; nil: simple tokens (etcd's default)
    /// living `authTokenTTLSeconds`.
    public var authTokens: (any AuthTokenProvider)?
    /// Cluster mode without local fsync: the highest applied index on stable storage (see
    /// `LogApplier.durableAppliedIndex`). nil: every group commit is synced, durable = applied.
    public var durableAppliedIndex: (@Sendable () -> UInt64)?

    /// --bcrypt-cost (etcd: 10).
    public var bcryptCost: Int = 10

    public init(clusterID: UInt64, memberID: UInt64) {
        self.clusterID = clusterID
        self.memberID = memberID
    }
}
