import EtcdServer
import GRPCTransport
import WatchHub

/// The etcd gRPC services rusd serves. Services and methods not listed here answer
/// UNIMPLEMENTED (the transport's answer for unknown services and methods), which clients such
/// as kube-apiserver treat as "not supported" (e.g. KV.RangeStream from etcd 3.7).
public enum EtcdServices {
    /// `watchProgressNotifyInterval`: etcd's --experimental-watch-progress-notify-interval.
    public static func all(_ server: EtcdServer, watchProgressNotifyInterval: Duration = .seconds(600)) -> [Service] {
        var watch = WatchHubConfig()
        watch.progressNotifyInterval = watchProgressNotifyInterval
        return [KVService.make(server), WatchService.make(server, hub: WatchHub(store: server.store, config: watch))]
    }
}

/// The etcd version rusd reports (Maintenance.Status, /version).
/// Kubernetes enables consistent reads from its watch cache and WatchList only when the version
/// is >= 3.4.31 and not within [3.5.0, 3.5.13), because they depend on RequestProgress. Until
/// rusd's RequestProgress is proven, it reports 3.5.0, which keeps them off.
public enum ReportedVersion {
    public static let server = "3.5.0"
    public static let cluster = "3.5.0"
}
