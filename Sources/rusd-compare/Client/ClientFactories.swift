/// Chooses the persistent etcd client the client workloads use: our GRPCTransport client with
/// etcd's protos (`GRPCEtcdClient`) by default.
enum ClientFactories {
    static func persistent() -> (any EtcdClientFactory)? { GRPCEtcdClientFactory() }

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
