import Auth
import EtcdProto

/// The auth check at apply time (etcd's authApplierV3, apply_auth.go): a write was checked
/// when it arrived, against the receiving member's auth state then; its entry carries who it
/// acts as (`RequestIdentity`), and applying checks again against the auth state at that point
/// of the log, which every member has alike. So a permission revoked (or auth enabled) between
/// arrival and apply refuses the write, on every member, with etcd's error:
///
/// - key permissions (Put, DeleteRange, Txn, the keys of a revoked lease): the identity's auth
///   revision older than the applied one → "etcdserver: revision of auth store is old" (etcd's
///   ErrAuthOldRevision, on which clientv3 authenticates again and retries); no identity while
///   auth is enabled → "etcdserver: user name is empty"; else the permission itself
///   ("etcdserver: permission denied");
/// - auth changes: the root role in the applied state (etcd's IsAdminPermitted, which does not
///   look at the revision): "user name is empty", "user name not found", "permission denied";
/// - LeaseGrant and Compact are not checked again (etcd 3.4 does not either).
extension AuthStore {
    /// Why `identity` may not perform `request` in the applied auth state, or nil when it may.
    /// Applier only: reads the lessor as applied so far.
    ///
    /// Cost while auth is disabled: one atomic load. While enabled, a request checked on
    /// arrival against an enabled state at the applied revision was checked against this very
    /// state (every auth change but enabling bumps the revision, and enabling twice changes
    /// nothing): only the checks that read a lease's keys (which may change without an auth
    /// change) run again.
    func refusal(of request: ApplyRequest, by identity: RequestIdentity, leases: Lessor) -> EtcdError? {
        let current = enabledRevision.load(ordering: .acquiring)
        if current == 0 { return nil }
        if identity.checkedOnArrival && identity.authRevision == current && !request.readsLeaseKeys { return nil }
        let caller = AuthCaller(state: state, user: identity.user.isEmpty ? nil : identity.user,
                                tokenRevision: identity.authRevision)
        do throws(EtcdError) {
            switch request {
            case .put(let p): try caller.check(p, leases: leases)
            case .deleteRange(let d): try caller.check(d)
            case .txn(let t): try caller.check(t, leases: leases)
            case .leaseRevoke(let r): try caller.requireWriteOnKeys(ofLease: r.id, leases)
            case .auth: try caller.requireAdmin()
            default: break
            }
        } catch {
            return error
        }
        return nil
    }
}

extension ApplyRequest {
    /// This request carrying `caller`'s identity into its log entry (nil: none, as for the
    /// requests the server makes itself, such as the revokes of expired leases).
    func withIdentity(of caller: AuthCaller?) -> ApplyRequest {
        guard let caller else { return self }
        return .identified(caller.identity, self)
    }

    /// Whether the request's auth check reads the keys attached to a lease: a Put (plain or in
    /// a Txn, nested ones too) with a lease, and LeaseRevoke.
    var readsLeaseKeys: Bool {
        switch self {
        case .put(let p): return p.lease != 0
        case .txn(let t): return Self.putsWithLease(t)
        case .leaseRevoke: return true
        default: return false
        }
    }

    private static func putsWithLease(_ t: Etcdserverpb_TxnRequest) -> Bool {
        for op in t.success + t.failure {
            switch op.request {
            case .requestPut(let p): if p.lease != 0 { return true }
            case .requestTxn(let n): if putsWithLease(n) { return true }
            default: break
            }
        }
        return false
    }
}
