import EtcdProto
import EtcdServer
import GRPCTransport

/// etcd's `etcdserverpb.Lease` service on an `EtcdServer`.
///
/// Grant and Revoke go through the ordered log (durable before the answer); KeepAlive,
/// TimeToLive and Leases are answered on the connection's event loop.
public enum LeaseService {
    public static func make(_ server: EtcdServer) -> Service {
        Service(name: "etcdserverpb.Lease", methods: [
            .unary("LeaseGrant") { (request: Etcdserverpb_LeaseGrantRequest, context, responder: UnaryResponder<Etcdserverpb_LeaseGrantResponse>) in
                server.leaseGrant(request) { responder.complete($0, on: context) }
            },
            .unary("LeaseRevoke") { (request: Etcdserverpb_LeaseRevokeRequest, context, responder: UnaryResponder<Etcdserverpb_LeaseRevokeResponse>) in
                server.leaseRevoke(request) { responder.complete($0, on: context) }
            },
            .unary("LeaseTimeToLive") { (request: Etcdserverpb_LeaseTimeToLiveRequest, _, responder: UnaryResponder<Etcdserverpb_LeaseTimeToLiveResponse>) in
                responder.succeed(server.leaseTimeToLive(request))
            },
            .unary("LeaseLeases") { (request: Etcdserverpb_LeaseLeasesRequest, _, responder: UnaryResponder<Etcdserverpb_LeaseLeasesResponse>) in
                responder.succeed(server.leaseLeases(request))
            },
            .bidirectionalStreaming("LeaseKeepAlive") { (stream: ServerStream<Etcdserverpb_LeaseKeepAliveResponse>) in
                BidiInbound(
                    onMessage: { (request: Etcdserverpb_LeaseKeepAliveRequest) in
                        stream.send(server.leaseKeepAlive(request))
                    },
                    onEnd: { stream.finish() })
            },
        ])
    }
}
