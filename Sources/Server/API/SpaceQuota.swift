import EtcdProto

/// Which writes NOSPACE refuses, as etcd's capped applier does: a Put, a Txn with a put in
/// any branch (nested txns included; etcd 3.4 counts only top-level puts), and a LeaseGrant
/// (see `LeaseService`). Deletes, lease revocations, compactions and reads keep working, so an
/// operator can free space.
enum SpaceQuota {
    static func adds(_ r: Etcdserverpb_TxnRequest) -> Bool {
        (r.success + r.failure).contains { op in
            switch op.request {
            case .requestPut: return true
            case .requestTxn(let t): return adds(t)
            default: return false
            }
        }
    }
}
