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

    /// Lease.LeaseTimeToLive with `keys` (etcd 3.4.26 / 3.5.9, CVE-2023-32082): an
    /// authenticated user with READ on every key attached to the lease; an unknown lease
    /// needs no permission.
    public func check(_ r: Etcdserverpb_LeaseTimeToLiveRequest, leasesOf server: EtcdServer) throws(EtcdError) {
        guard enabled, r.keys else { return }
        guard user != nil else { throw EtcdError(AuthError.userEmpty) }
        guard let keys = server.lessor.keys(of: r.id) else { return }
        for key in keys { try require(.read, Data(key), Data()) }
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

    /// Watching a range needs READ on all of it (etcd's isWatchPermitted). `key` as the
    /// client sent it: empty means [0], as in etcd. Stricter than etcd 3.4.23, which checks a
    /// from-key watch (`rangeEnd` [0]) as if it watched `key` alone (GHSA-xg4h-6gfc-h4m8,
    /// fixed in later etcd): here it needs READ on every key >= `key`.
    public func checkWatch(key: Data, rangeEnd: Data) throws(EtcdError) {
        try require(.read, key.isEmpty ? Data([0]) : key, rangeEnd)
    }
}

extension EtcdServer {
    /// The caller of a request carrying `token` (etcd's `token` metadata). An unknown or
    /// expired token fails with "etcdserver: invalid auth token"; with auth disabled too (etcd
    /// 3.4's AuthInfoFromCtx: every token is revoked when auth is disabled, so a client still
    /// sending one is told so) unless `tokenCheckedWhenDisabled` is false (the RPCs etcd checks
    /// only while auth is enabled). A missing token leaves the caller anonymous (its checks fail
    /// with "etcdserver: user name is empty").
    /// Without a token, a verified TLS client certificate's common name names the user, as in
    /// etcd (--client-cert-auth).
    public func caller(token: String?, commonName: String? = nil,
                       tokenCheckedWhenDisabled: Bool = true) throws(EtcdError) -> AuthCaller {
        let state = auth.state
        guard state.enabled else {
            if tokenCheckedWhenDisabled, let token, auth.tokens.user(for: token) == nil {
                throw EtcdError(AuthError.invalidAuthToken)
            }
            return AuthCaller(state: state, user: nil)
        }
        guard let token else {
            // etcd takes the common name as the user name as it is: an unknown user's checks
            // fail with "permission denied" ("user name not found" for admin RPCs).
            return AuthCaller(state: state, user: commonName.flatMap { $0.isEmpty ? nil : $0 })
        }
        guard let user = auth.tokens.user(for: token), state.users[user] != nil else {
            throw EtcdError(AuthError.invalidAuthToken)
        }
        return AuthCaller(state: state, user: user)
    }

    /// `user` (nil: anonymous) checked against the current auth state: how an open watch is
    /// re-checked after the auth state changed (see WatchStreamAccess).
    public func caller(user: String?) -> AuthCaller {
        AuthCaller(state: auth.state, user: user)
    }

    /// Auth.Authenticate: checks the password (bcrypt: slow, call it off the event loop) and
    /// issues a simple token.
    public func authenticate(name: String, password: String) throws(EtcdError) -> String {
        let state = auth.state
        guard state.enabled else { throw EtcdError(AuthError.authNotEnabled) }
        guard let user = state.users[name], !user.noPassword else {
            // As slow as a wrong password (etcd answers at once): trying names costs bcrypt
            // time too, and the answer time does not tell which users exist.
            _ = auth.hasher.hash(password)
            throw EtcdError(AuthError.authFailed)
        }
        guard auth.hasher.verify(password, against: user.passwordHash) else {
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
