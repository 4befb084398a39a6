/// Chooses the persistent etcd client the client workloads use.
enum ClientFactories {
    /// `--client` choice: "grpc" (default; our GRPCTransport client with etcd's protos),
    /// "etcdctl" (one etcdctl process per request: checks the workloads, measures etcdctl),
    /// "none" (client workloads are skipped).
    static let choices = ["grpc", "etcdctl", "none"]

    static func choose(_ choice: String, etcdctlBinary: String) throws -> (any EtcdClientFactory)? {
        switch choice {
        case "grpc": return GRPCEtcdClientFactory()
        case "etcdctl": return EtcdctlClientFactory(binary: etcdctlBinary)
        case "none": return nil
        default: throw SubprocessError(description: "--client must be one of \(choices.joined(separator: ", ")) (got \"\(choice)\")")
        }
    }
}
