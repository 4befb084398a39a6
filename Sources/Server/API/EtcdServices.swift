import EtcdServer
import GRPCTransport
import WatchHub

/// The etcd gRPC services rusd serves. Services and methods not listed here answer
/// UNIMPLEMENTED (the transport's answer for unknown services and methods), which clients such
/// as kube-apiserver treat as "not supported" (e.g. KV.RangeStream from etcd 3.7).
public enum EtcdServices {
    /// `member` describes this member to Maintenance and Cluster (nil: a member named
    /// "default" without URLs, for tests). `watchHub`: the hub Watch streams use (nil: one
    /// with the default configuration).
    public static func all(_ server: EtcdServer, member: LocalMember? = nil, watchHub: WatchHub? = nil) -> [Service] {
        let member = member ?? LocalMember(name: "default", peerURLs: [], clientURLs: [], alarms: server.alarms)
        return SimpleTokenIndexGate.apply([
            KVService.make(server, alarms: member.alarms),
            WatchService.make(server, hub: watchHub ?? WatchHub(store: server.store)),
            LeaseService.make(server, alarms: member.alarms),
            MaintenanceService.make(server, member: member),
            ClusterService.make(server, member: member),
            AuthService.make(server),
        ], server: server)
    }
}

/// The etcd version rusd reports (Maintenance.Status, /version).
/// Kubernetes enables consistent reads from its watch cache and WatchList only when the version
/// is >= 3.4.31 and not within [3.5.0, 3.5.13), because they depend on RequestProgress. rusd's
/// RequestProgress follows etcd 3.5+ (answered with watch_id -1 once every watcher of the stream
/// is synced; tested against etcd in Tests/compat/test_watch.py and on rusd alone in
/// test_watch_rusd.py), so it reports 3.6.0.
public enum ReportedVersion {
    public static let server = "3.6.0"
    public static let cluster = "3.6.0"
}
