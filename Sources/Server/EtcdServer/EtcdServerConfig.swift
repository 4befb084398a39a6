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
    /// Most log entries applied in one group commit (bounds latency and memory of a group).
    public var maxEntriesPerCommit: Int = 4096

    public init(clusterID: UInt64, memberID: UInt64) {
        self.clusterID = clusterID
        self.memberID = memberID
    }
}
