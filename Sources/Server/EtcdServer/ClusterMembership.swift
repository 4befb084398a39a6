/// Cluster mode's membership and leadership, as the Cluster and Maintenance services need them
/// (docs/cluster.md, "Membership and leader"). The implementation keeps them in the shared log's
/// database (Sources/Server/ClusterLog); single-member rusd has none and answers from the flags.
///
/// Every method may be called from any thread; the `done` callbacks run on some other thread,
/// exactly once, and must not block.
public protocol ClusterMembership: AnyObject, Sendable {
    /// This member's ID (stable across restarts).
    var memberID: UInt64 { get }
    /// The leader, term and commit index last seen (at most about a second old); never blocks.
    var leadership: ClusterLeadership { get }
    /// Whether this member holds the leader (lease-expiry) role now.
    var isLeader: Bool { get }
    /// Every member of the cluster, in ID order: the started ones and those added but not
    /// started yet (name ""). Removed members are not listed.
    func listMembers(_ done: @escaping @Sendable (Result<[ClusterMember], EtcdError>) -> Void)
    /// Records a member that will start with `peerURLs`; answers it and the new member list.
    func addMember(peerURLs: [String], _ done: @escaping @Sendable (Result<(added: ClusterMember, members: [ClusterMember]), EtcdError>) -> Void)
    /// Removes member `id` for good (that member stops serving); answers the remaining members.
    func removeMember(id: UInt64, _ done: @escaping @Sendable (Result<[ClusterMember], EtcdError>) -> Void)
    /// Replaces member `id`'s peer URLs; answers the member list.
    func updateMember(id: UInt64, peerURLs: [String], _ done: @escaping @Sendable (Result<[ClusterMember], EtcdError>) -> Void)
    /// Hands the leader role to member `target` (called on the leader); `done(nil)` once the
    /// target holds it.
    func moveLeader(to target: UInt64, _ done: @escaping @Sendable (EtcdError?) -> Void)
}

/// One member as MemberList reports it.
public struct ClusterMember: Sendable, Equatable {
    public var id: UInt64
    /// "" for a member added (MemberAdd) that has not started yet, as etcd reports it.
    public var name: String
    public var peerURLs: [String]
    public var clientURLs: [String]

    public init(id: UInt64, name: String, peerURLs: [String], clientURLs: [String]) {
        self.id = id
        self.name = name
        self.peerURLs = peerURLs
        self.clientURLs = clientURLs
    }
}

/// What Status reports as raft state: the leader's ID (0: none known), a term that grows each
/// time the leader changes, and the index of the newest committed log entry.
public struct ClusterLeadership: Sendable, Equatable {
    public var leaderID: UInt64
    public var term: UInt64
    public var committedIndex: UInt64

    public init(leaderID: UInt64 = 0, term: UInt64 = 0, committedIndex: UInt64 = 0) {
        self.leaderID = leaderID
        self.term = term
        self.committedIndex = committedIndex
    }
}

/// etcd 3.4's membership and leadership errors (v3rpc/rpctypes/error.go).
extension EtcdError {
    public static let memberNotFound = EtcdError(.notFound, "etcdserver: member not found")
    public static let memberBadURLs = EtcdError(.invalidArgument, "etcdserver: given member URLs are invalid")
    public static let peerURLExists = EtcdError(.failedPrecondition, "etcdserver: Peer URLs already exists")
    public static let notEnoughStartedMembers = EtcdError(.failedPrecondition, "etcdserver: re-configuration failed due to not enough started members")
    public static let notLearner = EtcdError(.failedPrecondition, "etcdserver: can only promote a learner member")
    public static let notLeader = EtcdError(.failedPrecondition, "etcdserver: not leader")
    public static let badLeaderTransferee = EtcdError(.failedPrecondition, "etcdserver: bad leader transferee")
    /// etcd's ErrTimeoutLeaderTransfer has no gRPC mapping: clients see UNKNOWN with its text.
    public static let leaderTransferTimeout = EtcdError(.unknown, "etcdserver: request timed out, leader transfer took too long")
}
