/// The persistent etcd client used by the client workloads, or nil when this build has none.
///
/// The client is our GRPCTransport's (branch `transport`) behind `EtcdClient`; until that lands,
/// client workloads are reported as skipped and only the etcdctl workloads run. To plug it in,
/// return an `EtcdClientFactory` whose clients map `EtcdClient` calls onto the etcd protos
/// (EtcdProto) sent over GRPCTransport.
enum ClientFactories {
    static func persistent() -> (any EtcdClientFactory)? { nil }

    /// `--client` choice: "auto" (the gRPC client when built in, else none), "grpc", "etcdctl"
    /// (one etcdctl process per request: checks the workloads, measures etcdctl), "none".
    static func choose(_ choice: String, etcdctlBinary: String) throws -> (any EtcdClientFactory)? {
        switch choice {
        case "auto": return persistent()
        case "grpc":
            guard let factory = persistent() else {
                throw SubprocessError(description: "--client grpc: this build has no gRPC etcd client yet (GRPCTransport client not merged)")
            }
            return factory
        case "etcdctl": return EtcdctlClientFactory(binary: etcdctlBinary)
        case "none": return nil
        default: throw SubprocessError(description: "--client must be auto, grpc, etcdctl or none (got \"\(choice)\")")
        }
    }
}
