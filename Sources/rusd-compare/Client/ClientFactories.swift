/// The persistent etcd client used by the client workloads, or nil when this build has none.
///
/// The client is our GRPCTransport's (branch `transport`) behind `EtcdClient`; until that lands,
/// client workloads are reported as skipped and only the etcdctl workloads run. To plug it in,
/// return an `EtcdClientFactory` whose clients map `EtcdClient` calls onto the etcd protos
/// (EtcdProto) sent over GRPCTransport.
enum ClientFactories {
    static func persistent() -> (any EtcdClientFactory)? { nil }
}
