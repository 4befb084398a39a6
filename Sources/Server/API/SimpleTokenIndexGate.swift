import Auth
import EtcdServer
import GRPCTransport

/// Cluster mode with simple tokens (etcd's isValidSimpleToken): a token is "<prefix>.<log
/// index>", registered by every member when it applies that Authenticate entry. A call
/// carrying a token whose index this member has not applied yet (it was issued on another
/// member a moment ago) waits for the read index first, then runs; its token is then known
/// here, or it is refused as invalid as before. Costs one dictionary lookup and a few byte
/// compares per call; nothing when single-member or with JWTs (not installed).
/// Bidirectional streams (Watch, LeaseKeepAlive) are not gated: a token this new on them gets
/// "etcdserver: invalid auth token", on which clients authenticate again.
enum SimpleTokenIndexGate {
    /// `services` gated when `server` is in cluster mode with simple tokens, else unchanged.
    static func apply(_ services: [Service], server: EtcdServer) -> [Service] {
        guard server.readsNeedReadIndex, server.auth.tokens is SimpleTokens else { return services }
        let gate: @Sendable (CallContext, @escaping @Sendable () -> Void) -> Void = { context, proceed in
            guard let token = context.metadata["token"], let index = SimpleTokens.logIndex(of: token),
                  index > server.appliedIndex else { return proceed() }
            server.waitForReadIndex { _ in proceed() }
        }
        return services.map { $0.gated(by: gate) }
    }
}
