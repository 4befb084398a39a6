import Auth
import Dispatch
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
    /// The auth revision the caller's token was issued at, when it carries one (JWT): key
    /// permission checks refuse it once auth changed since, with etcd's "revision of auth
    /// store is old" (etcd's isOpPermitted). nil: simple tokens and certificates.
    public var tokenRevision: UInt64? = nil

    public init(state: AuthState, user: String?, tokenRevision: UInt64? = nil) {
        self.state = state
        self.user = user
        self.tokenRevision = tokenRevision
    }

    /// Checks nothing when auth is disabled.
    var enabled: Bool { state.enabled }

    /// Who a write by this caller acts as, carried by its log entry and checked again when it
    /// is applied (see AuthApplyCheck.swift): the user, and the auth revision it was checked
    /// at here (a JWT's own). While auth is disabled here: no identity (revision 0), as in etcd,
    /// unless the caller sent a valid JWT (its user and revision, as etcd's AuthInfoFromCtx;
    /// not marked checked, so that applying checks it in full if auth is enabled by then).
    public var identity: RequestIdentity {
        guard enabled else {
            guard let user, let tokenRevision else { return RequestIdentity(user: "", authRevision: 0, checkedOnArrival: false) }
            return RequestIdentity(user: user, authRevision: tokenRevision, checkedOnArrival: false)
        }
        return RequestIdentity(user: user ?? "", authRevision: tokenRevision ?? state.revision, checkedOnArrival: true)
    }

    private func require(_ kind: AuthState.Permission.Kind, _ key: Data, _ rangeEnd: Data) throws(EtcdError) {
        guard enabled else { return }
        guard let user else { throw EtcdError(AuthError.userEmpty) }
        if let tokenRevision, tokenRevision < state.revision { throw EtcdError(AuthError.authOldRevision) }
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

    /// An authenticated caller, any user or role (etcd's requireAuthInfo, since the 2026
    /// advisory GHSA-q8m4-xhhv-38mg / CVE-2026-33413, commit a07ecd124): nothing while auth is
    /// disabled; no token fails with "etcdserver: user name is empty". A certificate's common
    /// name counts as authenticated even when it names no user, as in etcd.
    public func requireAuthenticated() throws(EtcdError) {
        guard enabled else { return }
        guard user != nil else { throw EtcdError(AuthError.userEmpty) }
    }

    public func check(_ r: Etcdserverpb_RangeRequest) throws(EtcdError) {
        try require(.read, r.key, r.rangeEnd)
    }

    /// KV.Put, plain or inside a Txn (etcd's checkPutAuth, in its order): WRITE on the key;
    /// with a lease, WRITE on every key already attached to that lease (checkLeasePuts: a user
    /// who could not revoke the lease must not attach keys to it; root passes); with prev_kv,
    /// READ on the key. etcd 3.4.23 checks only the key of a Put inside a Txn; newest etcd
    /// checks all three (etcd PRs 21681/21685, commit 778237265; CHANGELOG-3.6 "RBAC authorization
    /// bypass ... via PrevKv or lease attachment in Put requests nested in etcd transactions").
    /// The lease's keys are read on arrival and again when the entry is applied (etcd reads
    /// them at apply time only).
    public func check(_ r: Etcdserverpb_PutRequest, leasesOf server: EtcdServer) throws(EtcdError) {
        try check(r, leases: server.lessor)
    }

    func check(_ r: Etcdserverpb_PutRequest, leases: Lessor) throws(EtcdError) {
        guard enabled else { return }
        try require(.write, r.key, Data())
        try requireWriteOnKeys(ofLease: r.lease, leases)
        if r.prevKv { try require(.read, r.key, Data()) }
    }

    /// Lease.LeaseRevoke (newest etcd): an authenticated caller (requireAuthInfo), then WRITE
    /// on every key attached to the lease (revoking deletes them). A lease without keys, or an
    /// unknown one, needs no permission.
    public func check(_ r: Etcdserverpb_LeaseRevokeRequest, leasesOf server: EtcdServer) throws(EtcdError) {
        try requireAuthenticated()
        try requireWriteOnKeys(ofLease: r.id, server.lessor)
    }

    /// Lease.LeaseTimeToLive (newest etcd): an authenticated caller (requireAuthInfo); with
    /// `keys`, root or READ on every key attached to the lease (etcd 3.4.26 / 3.5.9,
    /// CVE-2023-32082). An unknown lease needs no permission.
    public func check(_ r: Etcdserverpb_LeaseTimeToLiveRequest, leasesOf server: EtcdServer) throws(EtcdError) {
        guard enabled else { return }
        try requireAuthenticated()
        guard r.keys, let keys = server.lessor.keys(of: r.id) else { return }
        for key in keys { try require(.read, Data(key), Data()) }
    }

    /// Lease.LeaseKeepAlive, per request (newest etcd's checkLeaseRenew): an authenticated
    /// caller; root, or WRITE on every key attached to the lease. An unknown lease needs no
    /// permission (its answer is TTL 0, as before).
    public func check(_ r: Etcdserverpb_LeaseKeepAliveRequest, leasesOf server: EtcdServer) throws(EtcdError) {
        guard enabled else { return }
        try requireAuthenticated()
        try requireWriteOnKeys(ofLease: r.id, server.lessor)
    }

    /// Lease.LeaseLeases (newest etcd's checkLeaseLeases): an authenticated caller; root, or
    /// READ on every key of every lease (listing lease IDs tells which keys are leased).
    /// Leases granted or keys attached while the check runs are not checked (etcd re-checks
    /// the auth revision, not the leases).
    public func check(_ r: Etcdserverpb_LeaseLeasesRequest, leasesOf server: EtcdServer) throws(EtcdError) {
        guard enabled else { return }
        try requireAuthenticated()
        guard let user, !state.isRoot(user) else { return }
        for id in server.lessor.ids {
            for key in server.lessor.keys(of: id) ?? [] { try require(.read, Data(key), Data()) }
        }
    }

    /// WRITE on every key attached to lease `id` (etcd's checkLeasePuts); nothing for lease 0
    /// or an unknown lease.
    func requireWriteOnKeys(ofLease id: Int64, _ leases: Lessor) throws(EtcdError) {
        guard enabled, id != 0, let keys = leases.keys(of: id) else { return }
        for key in keys { try require(.write, Data(key), Data()) }
    }

    public func check(_ r: Etcdserverpb_DeleteRangeRequest) throws(EtcdError) {
        try require(.write, r.key, r.rangeEnd)
        if r.prevKv { try require(.read, r.key, r.rangeEnd) }
    }

    /// Compares need READ; every operation of both branches (nested Txns too, CVE-2026-33343)
    /// its own permission, a Put the same as a plain Put (lease and prev_kv included).
    public func check(_ t: Etcdserverpb_TxnRequest, leasesOf server: EtcdServer) throws(EtcdError) {
        try check(t, leases: server.lessor)
    }

    func check(_ t: Etcdserverpb_TxnRequest, leases: Lessor) throws(EtcdError) {
        guard enabled else { return }
        for c in t.compare { try require(.read, c.key, c.rangeEnd) }
        for op in t.success + t.failure {
            switch op.request {
            case .requestRange(let r): try check(r)
            case .requestPut(let p): try check(p, leases: leases)
            case .requestDeleteRange(let d): try check(d)
            case .requestTxn(let n): try check(n, leases: leases)
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
            guard let token else { return AuthCaller(state: state, user: nil) }
            let info = auth.tokens.info(token)
            if tokenCheckedWhenDisabled, info == nil { throw EtcdError(AuthError.invalidAuthToken) }
            // A JWT stays someone while auth is disabled here (this member may not have applied
            // `auth enable` yet): its write carries the user, checked when applied.
            guard let info, let revision = info.revision else { return AuthCaller(state: state, user: nil) }
            return AuthCaller(state: state, user: info.user, tokenRevision: revision)
        }
        guard let token else {
            // etcd takes the common name as the user name as it is: an unknown user's checks
            // fail with "permission denied" ("user name not found" for admin RPCs).
            return AuthCaller(state: state, user: commonName.flatMap { $0.isEmpty ? nil : $0 })
        }
        guard let info = auth.tokens.info(token) else { throw EtcdError(AuthError.invalidAuthToken) }
        // A simple token of a deleted user is gone already; a JWT cannot be recalled, so its
        // user's fate is told by the checks, as in etcd (an old revision, "user name not found").
        if info.revision == nil, state.users[info.user] == nil { throw EtcdError(AuthError.invalidAuthToken) }
        return AuthCaller(state: state, user: info.user, tokenRevision: info.revision)
    }

    /// `user` (nil: anonymous) checked against the current auth state: how an open watch is
    /// re-checked after the auth state changed (see WatchStreamAccess).
    public func caller(user: String?) -> AuthCaller {
        AuthCaller(state: auth.state, user: user)
    }

    /// Checks `password` for user `name` (bcrypt: slow, call it off the event loop); the auth
    /// revision it was checked at.
    func checkPassword(name: String, password: String) throws(EtcdError) -> UInt64 {
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
        return state.revision
    }

    /// Auth.Authenticate on this member alone: checks the password (bcrypt: slow, call it off
    /// the event loop) and issues a token (simple, or a JWT carrying the current auth revision).
    public func authenticate(name: String, password: String) throws(EtcdError) -> String {
        let revision = try checkPassword(name: name, password: password)
        do { return try auth.tokens.assign(user: name, revision: revision) } catch {
            throw EtcdError(.unknown, error.description)   // etcd: a verify-only JWT key
        }
    }

    /// Auth.Authenticate. Call it on `queue` (not an event loop): the password is checked
    /// (bcrypt) on the calling thread, and again on `queue` when it must be.
    ///
    /// Cluster mode with simple tokens: the token is issued through the log (etcd's
    /// InternalAuthenticateRequest), so that every member registers it and it is valid on every
    /// member: a `SimpleTokenGrant` (user, random prefix, the auth revision the password was
    /// checked at) is proposed, and the token "<prefix>.<log index>" is returned once applied
    /// here. When the auth state changed between the check and the grant, the password is
    /// checked again (etcd's Authenticate loops too), at most 5 times. Otherwise (one member,
    /// or JWTs, which every member verifies with the same key) `authenticate(name:password:)`.
    public func authenticate(name: String, password: String, checkingOn queue: DispatchQueue,
                             completion: @escaping @Sendable (Result<String, EtcdError>) -> Void) {
        guard readsNeedReadIndex, auth.tokens is SimpleTokens else {
            return completion(Result { () throws(EtcdError) -> String in try authenticate(name: name, password: password) })
        }
        grantToken(name: name, password: password, attempt: 1, queue: queue, completion: completion)
    }

    private func grantToken(name: String, password: String, attempt: Int, queue: DispatchQueue,
                            completion: @escaping @Sendable (Result<String, EtcdError>) -> Void) {
        let checked: UInt64
        do { checked = try checkPassword(name: name, password: password) } catch {
            return completion(.failure(error))
        }
        let grant = SimpleTokenGrant(user: name, prefix: SimpleTokens.newPrefix(), checkedRevision: checked)
        propose(.authenticate(grant)) { [self] result in
            switch result {
            case .success(.authenticate(let token?)):
                completion(.success(token))
            case .success(.authenticate(nil)):
                guard attempt < 5 else { return completion(.failure(.timeout)) }
                queue.async { self.grantToken(name: name, password: password, attempt: attempt + 1, queue: queue,
                                              completion: completion) }
            case .success(let other):
                preconditionFailure("authenticate answered with \(other)")
            case .failure(let error):
                completion(.failure(error))
            }
        }
    }

    /// Applies an auth change through the ordered log; completes with the response header once
    /// durable.
    /// `caller` (who was checked as root on arrival) is checked again when the change is
    /// applied (see AuthApplyCheck.swift).
    public func applyAuth(_ mutation: AuthState.Mutation, caller: AuthCaller? = nil,
                          completion: @escaping @Sendable (Result<Etcdserverpb_ResponseHeader, EtcdError>) -> Void) {
        propose(ApplyRequest.auth(mutation).withIdentity(of: caller)) { [self] result in
            completion(result.map { response in
                guard case .auth(let revision) = response else { preconditionFailure("auth answered with \(response)") }
                return header(revision: revision)
            })
        }
    }
}
