import EtcdProto
import EtcdServer
import GRPCTransport

/// etcd's `etcdserverpb.KV` service on an `EtcdServer`.
///
/// Range is answered on the connection's event loop, synchronously (no thread hop). Writes are
/// handed to the server's ordered log; their responses are written from the event loop once the
/// write is durable.
///
/// While `alarms` has NOSPACE, Put and Txns with puts fail with "etcdserver: mvcc: database
/// space exceeded" (see `SpaceQuota`).
public enum KVService {
    public static func make(_ server: EtcdServer, alarms: AlarmList? = nil) -> Service {
        Service(name: "etcdserverpb.KV", methods: [
            .unary("Range") { (request: Etcdserverpb_RangeRequest, context, responder: UnaryResponder<Etcdserverpb_RangeResponse>) in
                do throws(EtcdError) {
                    try server.caller(context).check(request)
                    if server.readsNeedReadIndex && !request.serializable {
                        // Cluster mode: wait until this member applied the log's head first,
                        // then check again: an auth change acknowledged on another member
                        // before this read started is applied here only now.
                        return server.waitForReadIndex { error in
                            if let error { return responder.complete(.failure(error), on: context) }
                            responder.complete(Result { () throws(EtcdError) -> Etcdserverpb_RangeResponse in
                                try server.caller(context).check(request)
                                return try server.range(request)
                            }, on: context)
                        }
                    }
                    if let encoded = try server.rangeEncoded(request) {
                        // A plain scan: encoded straight from the store's records.
                        responder.succeed(serializedSize: encoded.size, serialize: encoded.write(into:))
                    } else {
                        responder.succeed(try server.range(request))
                    }
                } catch {
                    responder.fail(GRPCStatus(error))
                }
            },
            .unary("Put") { (request: Etcdserverpb_PutRequest, context, responder: UnaryResponder<Etcdserverpb_PutResponse>) in
                if alarms?.noSpace == true { return responder.fail(GRPCStatus(EtcdError.noSpace)) }
                guard let caller = authorizedCaller(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.check(request, leasesOf: server) }) else { return }
                server.put(request, caller: caller) { responder.complete($0, on: context) }
            },
            .unary("DeleteRange") { (request: Etcdserverpb_DeleteRangeRequest, context, responder: UnaryResponder<Etcdserverpb_DeleteRangeResponse>) in
                guard let caller = authorizedCaller(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.check(request) }) else { return }
                server.deleteRange(request, caller: caller) { responder.complete($0, on: context) }
            },
            .unary("Txn") { (request: Etcdserverpb_TxnRequest, context, responder: UnaryResponder<Etcdserverpb_TxnResponse>) in
                if alarms?.noSpace == true && SpaceQuota.adds(request) { return responder.fail(GRPCStatus(EtcdError.noSpace)) }
                guard let caller = authorizedCaller(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.check(request, leasesOf: server) }) else { return }
                server.txn(request, caller: caller) { responder.complete($0, on: context) }
            },
            .unary("Compact") { (request: Etcdserverpb_CompactionRequest, context, responder: UnaryResponder<Etcdserverpb_CompactionResponse>) in
                // Newest etcd (GHSA-q8m4-xhhv-38mg / CVE-2026-33413, commit a07ecd124): the root
                // role (etcd 3.4: any valid token or none). kube-apiserver's compaction therefore
                // needs root when auth is enabled, as in etcd.
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAdmin() }) else { return }
                server.compact(request) { responder.complete($0, on: context) }
            },
        ])
    }
}

/// Runs `check` for the caller of the request (its `token` metadata); on failure answers the
/// call with etcd's auth error and returns false.
func authorized<Response>(_ server: EtcdServer, _ context: CallContext, _ responder: UnaryResponder<Response>,
                          tokenCheckedWhenDisabled: Bool = true,
                          _ check: (AuthCaller) throws(EtcdError) -> Void) -> Bool {
    authorizedCaller(server, context, responder, tokenCheckedWhenDisabled: tokenCheckedWhenDisabled, check) != nil
}

/// `authorized`, returning the caller that passed `check` (nil: the call was answered with the
/// error): a write hands it to the server, which checks it again when the write is applied.
func authorizedCaller<Response>(_ server: EtcdServer, _ context: CallContext, _ responder: UnaryResponder<Response>,
                                tokenCheckedWhenDisabled: Bool = true,
                                _ check: (AuthCaller) throws(EtcdError) -> Void) -> AuthCaller? {
    do throws(EtcdError) {
        let caller = try server.caller(context, tokenCheckedWhenDisabled: tokenCheckedWhenDisabled)
        try check(caller)
        return caller
    } catch {
        responder.fail(GRPCStatus(error))
        return nil
    }
}
