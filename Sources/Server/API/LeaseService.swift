import EtcdProto
import EtcdServer
import GRPCTransport

/// etcd's `etcdserverpb.Lease` service on an `EtcdServer`.
///
/// Grant and Revoke go through the ordered log (durable before the answer); KeepAlive,
/// TimeToLive and Leases are answered on the connection's event loop.
///
/// Auth, as etcd 3.4: Grant and Revoke refuse an invalid token ("etcdserver: invalid auth
/// token"); Revoke needs WRITE on every key attached to the lease (`AuthCaller.check`);
/// TimeToLive with keys needs READ on every key of the lease (etcd 3.4.26 / 3.5.9, CVE-2023-32082:
/// 3.4.23 checks nothing); KeepAlive, TimeToLive without keys and Leases check nothing.
/// While `alarms` has NOSPACE, Grant fails with "etcdserver: mvcc: database space exceeded"
/// (etcd's capped applier); Revoke keeps working, so an operator can free space.
public enum LeaseService {
    public static func make(_ server: EtcdServer, alarms: AlarmList? = nil) -> Service {
        Service(name: "etcdserverpb.Lease", methods: [
            .unary("LeaseGrant") { (request: Etcdserverpb_LeaseGrantRequest, context, responder: UnaryResponder<Etcdserverpb_LeaseGrantResponse>) in
                if alarms?.noSpace == true { return responder.fail(GRPCStatus(EtcdError.noSpace)) }
                guard authorized(server, context, responder, { (_: AuthCaller) throws(EtcdError) in }) else { return }
                server.leaseGrant(request) { responder.complete($0, on: context) }
            },
            .unary("LeaseRevoke") { (request: Etcdserverpb_LeaseRevokeRequest, context, responder: UnaryResponder<Etcdserverpb_LeaseRevokeResponse>) in
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.check(request, leasesOf: server) }) else { return }
                server.leaseRevoke(request) { responder.complete($0, on: context) }
            },
            .unary("LeaseTimeToLive") { (request: Etcdserverpb_LeaseTimeToLiveRequest, context, responder: UnaryResponder<Etcdserverpb_LeaseTimeToLiveResponse>) in
                if request.keys {
                    guard authorized(server, context, responder, tokenCheckedWhenDisabled: false, { (caller: AuthCaller) throws(EtcdError) in try caller.check(request, leasesOf: server) }) else { return }
                }
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
