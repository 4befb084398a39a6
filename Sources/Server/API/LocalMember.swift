import EtcdServer
import Synchronization

/// This member as the cluster services and the HTTP endpoints describe it: name and URLs from
/// the flags (--name, --initial-advertise-peer-urls, --advertise-client-urls), the backend
/// quota (--quota-backend-bytes), and the alarms (the server's `EtcdServer.alarms`, persisted
/// through the ordered log; the default in-memory list is for tests). One instance per server,
/// shared by the Maintenance and Cluster services and the HTTP endpoints.
///
/// Peer URLs changed by Cluster.MemberUpdate live in memory only: rusd has no peer transport,
/// and the next start takes them from the flags again.
///
/// Cluster mode (--shared-log): `cluster` is the membership recorded in the shared log; the
/// Cluster service and Status answer from it instead of from this member alone.
public final class LocalMember: Sendable {
    public let name: String
    public let clientURLs: [String]
    /// The store size (engine disk bytes) above which NOSPACE is raised.
    public let quotaBackendBytes: Int64
    public let alarms: AlarmList
    /// The cluster's membership and leader (nil: a single member, its own leader).
    public let cluster: (any ClusterMembership)?
    private let peers: Mutex<[String]>

    public init(name: String, peerURLs: [String], clientURLs: [String],
                quotaBackendBytes: Int64 = 2 << 30, alarms: AlarmList = AlarmList(),
                cluster: (any ClusterMembership)? = nil) {
        self.cluster = cluster
        self.name = name
        self.clientURLs = clientURLs
        self.quotaBackendBytes = quotaBackendBytes
        self.alarms = alarms
        peers = Mutex(peerURLs)
    }

    public var peerURLs: [String] { peers.withLock { $0 } }

    func setPeerURLs(_ urls: [String]) {
        peers.withLock { $0 = urls }
    }
}
