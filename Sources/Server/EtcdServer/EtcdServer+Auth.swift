import Auth
import EtcdProto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Who a request acts as, decided from its `token` metadata (see `EtcdServer.caller(token:)`).
public struct AuthCaller: Sendable {
    /// The auth state the checks run against (one snapshot per request).
    public let state: AuthState
    /// The authenticated user; nil when the request carried no token.
    public let user: String?

    /// Checks nothing when auth is disabled.
    var enabled: Bool { state.enabled }

    private func require(_ kind: AuthState.Permission.Kind, _ key: Data, _ rangeEnd: Data) throws(EtcdError) {
        guard enabled else { return }
        guard let user else { throw EtcdError(AuthError.userEmpty) }
        guard state.permits(user, kind, key: Array(key), rangeEnd: Array(rangeEnd)) else {
            throw EtcdError(AuthError.permissionDenied)
        }
    }

    /// Admin RPCs (auth management, maintenance): the root role.
    public func requireAdmin() throws(EtcdError) {
        guard enabled else { return }
        guard let user else { throw EtcdError(AuthError.userEmpty) }
        guard state.users[user] != nil else { throw EtcdError(AuthError.userNotFound) }
        guard state.isRoot(user) else { throw EtcdError(AuthError.permissionDenied) }
    }

    public func check(_ r: Etcdserverpb_RangeRequest) throws(EtcdError) {
        try require(.read, r.key, r.rangeEnd)
    }

    public func check(_ r: Etcdserverpb_PutRequest) throws(EtcdError) {
        try require(.write, r.key, Data())
        if r.prevKv { try require(.read, r.key, Data()) }
    }

    /// KV.Put (etcd 3.4's order): WRITE on the key; with a lease, WRITE on every key already
    /// attached to that lease (etcd's checkLeasePuts: a user who could not revoke the lease
    /// must not attach keys to it); with prev_kv, READ on the key. Puts inside a Txn get only
    /// `check(_:)`'s checks, as in etcd 3.4.
    /// Difference from etcd: the lease's keys are read when the request arrives, not when it
    /// is applied.
    public func check(_ r: Etcdserverpb_PutRequest, leasesOf server: EtcdServer) throws(EtcdError) {
        guard enabled else { return }
        try require(.write, r.key, Data())
        try requireWriteOnKeys(ofLease: r.lease, server)
        if r.prevKv { try require(.read, r.key, Data()) }
    }

    /// Lease.LeaseRevoke: WRITE on every key attached to the lease (revoking deletes them).
    /// A lease without keys, or an unknown one, needs no permission (etcd 3.4).
    public func check(_ r: Etcdserverpb_LeaseRevokeRequest, leasesOf server: EtcdServer) throws(EtcdError) {
        try requireWriteOnKeys(ofLease: r.id, server)
    }

    private func requireWriteOnKeys(ofLease id: Int64, _ server: EtcdServer) throws(EtcdError) {
        guard enabled, id != 0, let keys = server.lessor.keys(of: id) else { return }
        for key in keys { try require(.write, Data(key), Data()) }
    }

    public func check(_ r: Etcdserverpb_DeleteRangeRequest) throws(EtcdError) {
        try require(.write, r.key, r.rangeEnd)
        if r.prevKv { try require(.read, r.key, r.rangeEnd) }
    }

    /// Compares need READ; every operation of both branches (nested too) its own permission.
    public func check(_ t: Etcdserverpb_TxnRequest) throws(EtcdError) {
        guard enabled else { return }
        for c in t.compare { try require(.read, c.key, c.rangeEnd) }
        for op in t.success + t.failure {
            switch op.request {
            case .requestRange(let r): try check(r)
            case .requestPut(let p): try check(p)
            case .requestDeleteRange(let d): try check(d)
            case .requestTxn(let n): try check(n)
            case nil: break
            }
        }
    }

    /// Watching a range needs READ on it.
    public func checkWatch(key: Data, rangeEnd: Data) throws(EtcdError) {
        try require(.read, key, rangeEnd)
    }
}

extension EtcdServer {
    /// The caller of a request carrying `token` (etcd's `token` metadata). With auth disabled
    /// any token is ignored; with auth enabled an unknown or expired token fails with
    /// "etcdserver: invalid auth token" and a missing one leaves the caller anonymous (its
    /// checks fail with "etcdserver: user name is empty").
    /// Without a token, a verified TLS client certificate's common name names the user, as in
    /// etcd (--client-cert-auth).
    public func caller(token: String?, commonName: String? = nil) throws(EtcdError) -> AuthCaller {
        let state = auth.state
        guard state.enabled else { return AuthCaller(state: state, user: nil) }
        guard let token else {
            let user = commonName.flatMap { state.users[$0] != nil ? $0 : nil }
            return AuthCaller(state: state, user: user)
        }
        guard let user = auth.tokens.user(for: token), state.users[user] != nil else {
            throw EtcdError(AuthError.invalidAuthToken)
        }
        return AuthCaller(state: state, user: user)
    }

    /// Auth.Authenticate: checks the password (bcrypt: slow, call it off the event loop) and
    /// issues a simple token.
    public func authenticate(name: String, password: String) throws(EtcdError) -> String {
        let state = auth.state
        guard state.enabled else { throw EtcdError(AuthError.authNotEnabled) }
        guard let user = state.users[name], !user.noPassword,
              auth.hasher.verify(password, against: user.passwordHash) else {
            throw EtcdError(AuthError.authFailed)
        }
        return auth.tokens.issue(for: name)
    }

    /// Applies an auth change through the ordered log; completes with the response header once
    /// durable.
    public func applyAuth(_ mutation: AuthState.Mutation,
                          completion: @escaping @Sendable (Result<Etcdserverpb_ResponseHeader, EtcdError>) -> Void) {
        applier.submit(.auth(mutation)) { [self] result in
            completion(result.map { response in
                guard case .auth(let revision) = response else { preconditionFailure("auth answered with \(response)") }
                return header(revision: revision)
            })
        }
    }
}
