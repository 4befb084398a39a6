import EtcdProto
import EtcdServer
import GRPCTransport

/// etcd's `etcdserverpb.Lease` service on an `EtcdServer`.
///
/// Grant and Revoke go through the ordered log (durable before the answer); KeepAlive,
/// TimeToLive and Leases are answered on the connection's event loop.
///
/// Auth, as the newest etcd (GHSA-q8m4-xhhv-38mg / CVE-2026-33413, commit a07ecd124; stricter
/// than 3.4.23): every RPC needs an authenticated caller when auth is enabled ("etcdserver:
/// user name is empty" without a token); Revoke and KeepAlive also root or WRITE on every key
/// attached to the lease; TimeToLive with keys root or READ on every key of the lease
/// (CVE-2023-32082); Leases root or READ on every key of every lease (see `AuthCaller.check`).
/// As in etcd 3.4, Grant and Revoke (raft requests) refuse an invalid token even while auth is
/// disabled; the others check nothing then. A refused keep-alive ends the stream with the
/// error, as etcd's LeaseKeepAlive does.
/// While `alarms` has NOSPACE, Grant fails with "etcdserver: mvcc: database space exceeded"
/// (etcd's capped applier); Revoke keeps working, so an operator can free space.
public enum LeaseService {
    public static func make(_ server: EtcdServer, alarms: AlarmList? = nil) -> Service {
        Service(name: "etcdserverpb.Lease", methods: [
            .unary("LeaseGrant") { (request: Etcdserverpb_LeaseGrantRequest, context, responder: UnaryResponder<Etcdserverpb_LeaseGrantResponse>) in
                if alarms?.noSpace == true { return responder.fail(GRPCStatus(EtcdError.noSpace)) }
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAuthenticated() }) else { return }
                server.leaseGrant(request) { responder.complete($0, on: context) }
            },
            .unary("LeaseRevoke") { (request: Etcdserverpb_LeaseRevokeRequest, context, responder: UnaryResponder<Etcdserverpb_LeaseRevokeResponse>) in
                guard let caller = authorizedCaller(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.check(request, leasesOf: server) }) else { return }
                server.leaseRevoke(request, caller: caller) { responder.complete($0, on: context) }
            },
            .unary("LeaseTimeToLive") { (request: Etcdserverpb_LeaseTimeToLiveRequest, context, responder: UnaryResponder<Etcdserverpb_LeaseTimeToLiveResponse>) in
                guard authorized(server, context, responder, tokenCheckedWhenDisabled: false, { (caller: AuthCaller) throws(EtcdError) in try caller.check(request, leasesOf: server) }) else { return }
                responder.succeed(server.leaseTimeToLive(request))
            },
            .unary("LeaseLeases") { (request: Etcdserverpb_LeaseLeasesRequest, context, responder: UnaryResponder<Etcdserverpb_LeaseLeasesResponse>) in
                guard authorized(server, context, responder, tokenCheckedWhenDisabled: false, { (caller: AuthCaller) throws(EtcdError) in try caller.check(request, leasesOf: server) }) else { return }
                responder.succeed(server.leaseLeases(request))
            },
            .bidirectionalStreaming("LeaseKeepAlive") { (stream: ServerStream<Etcdserverpb_LeaseKeepAliveResponse>) in
                BidiInbound(
                    onMessage: { (request: Etcdserverpb_LeaseKeepAliveRequest) in
                        do throws(EtcdError) {
                            try server.caller(stream.context, tokenCheckedWhenDisabled: false).check(request, leasesOf: server)
                        } catch {
                            return stream.finish(GRPCStatus(error))
                        }
                        stream.send(server.leaseKeepAlive(request))
                    },
                    onEnd: { stream.finish() })
            },
        ])
    }
}
