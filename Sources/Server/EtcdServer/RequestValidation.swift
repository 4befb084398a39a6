import EtcdProto

/// The checks etcd's gRPC layer makes before a request enters the log (etcd's v3rpc/key.go),
/// with etcd's errors, plus the request size limit (--max-request-bytes).
enum RequestValidation {
    /// A sort target outside its enum is refused as etcd 3.5's checkRangeRequest does (etcd
    /// 3.4.23 dies on one: no sort function in its applier). An unknown sort order is served
    /// as 3.4 serves it (unsorted, limit applied), which 3.4 does without dying.
    static func check(_ r: Etcdserverpb_RangeRequest) throws(EtcdError) {
        if r.key.isEmpty { throw .emptyKey }
        if case .UNRECOGNIZED = r.sortTarget { throw .invalidSortOption }
    }

    static func check(_ r: Etcdserverpb_PutRequest) throws(EtcdError) {
        if r.key.isEmpty { throw .emptyKey }
        if r.ignoreValue && !r.value.isEmpty { throw .valueProvided }
        if r.ignoreLease && r.lease != 0 { throw .leaseProvided }
    }

    static func check(_ r: Etcdserverpb_DeleteRangeRequest) throws(EtcdError) {
        if r.key.isEmpty { throw .emptyKey }
    }

    /// etcd's checkTxnRequest then checkIntervals on both branches.
    static func check(_ r: Etcdserverpb_TxnRequest, maxTxnOps: Int) throws(EtcdError) {
        try checkOps(r, maxTxnOps: maxTxnOps)
        _ = try checkIntervals(r.success)
        _ = try checkIntervals(r.failure)
    }

    private static func checkOps(_ r: Etcdserverpb_TxnRequest, maxTxnOps: Int) throws(EtcdError) {
        let opc = max(r.compare.count, r.success.count, r.failure.count)
        if opc > maxTxnOps { throw .tooManyOps }
        for c in r.compare where c.key.isEmpty { throw .emptyKey }
        for op in r.success { try checkOp(op, maxTxnOps: maxTxnOps - opc) }
        for op in r.failure { try checkOp(op, maxTxnOps: maxTxnOps - opc) }
    }

    private static func checkOp(_ op: Etcdserverpb_RequestOp, maxTxnOps: Int) throws(EtcdError) {
        switch op.request {
        case .requestRange(let r): try check(r)
        case .requestPut(let r): try check(r)
        case .requestDeleteRange(let r): try check(r)
        case .requestTxn(let r): try checkOps(r, maxTxnOps: maxTxnOps)
        case nil: throw .keyNotFound
        }
    }

    /// A deleted interval: [start, end) or a single key (end nil).
    private struct Interval {
        var start: [UInt8]
        var end: [UInt8]?   // nil: the point `start`; [] after mapping "\0": unbounded
        var unbounded: Bool

        func contains(_ k: [UInt8]) -> Bool {
            guard let end else { return k == start }
            if k.lexicographicallyPrecedes(start) { return false }
            return unbounded || k.lexicographicallyPrecedes(end)
        }
    }

    /// etcd's checkIntervals: within one branch list (recursively through nested txns), no key
    /// may be put twice, and no put may fall in a deleted range; puts in the success and failure
    /// branches of the same nested txn may repeat each other.
    private static func checkIntervals(_ reqs: [Etcdserverpb_RequestOp]) throws(EtcdError) -> (puts: Set<[UInt8]>, dels: [Interval]) {
        var dels: [Interval] = []
        for req in reqs {
            guard case .requestDeleteRange(let d) = req.request else { continue }
            if d.rangeEnd.isEmpty {
                dels.append(Interval(start: Array(d.key), end: nil, unbounded: false))
            } else {
                // etcd builds an affine interval [key, rangeEnd); "\0" as the end compares as
                // the smallest key, so it covers nothing beyond key...rangeEnd literally.
                dels.append(Interval(start: Array(d.key), end: Array(d.rangeEnd), unbounded: false))
            }
        }
        func deleted(_ k: [UInt8]) -> Bool { dels.contains { $0.contains(k) } }

        var puts = Set<[UInt8]>()
        for req in reqs {
            guard case .requestTxn(let t) = req.request else { continue }
            let then = try checkIntervals(t.success)
            let els = try checkIntervals(t.failure)
            for k in then.puts {
                if puts.contains(k) || deleted(k) { throw .duplicateKey }
                puts.insert(k)
            }
            for k in els.puts {
                if puts.contains(k) && !then.puts.contains(k) { throw .duplicateKey }
                if deleted(k) { throw .duplicateKey }
                puts.insert(k)
            }
            dels.append(contentsOf: then.dels)
            dels.append(contentsOf: els.dels)
        }
        for req in reqs {
            guard case .requestPut(let p) = req.request else { continue }
            let k = Array(p.key)
            if puts.contains(k) || deleted(k) { throw .duplicateKey }
            puts.insert(k)
        }
        return (puts, dels)
    }

    // MARK: size

    /// Approximate encoded size of a write request as etcd measures it (the marshalled raft
    /// request: the request's bytes plus a small envelope).
    static func size(_ r: Etcdserverpb_PutRequest) -> Int { r.key.count + r.value.count + 32 }
    static func size(_ r: Etcdserverpb_DeleteRangeRequest) -> Int { r.key.count + r.rangeEnd.count + 24 }
    static func size(_ r: Etcdserverpb_RangeRequest) -> Int { r.key.count + r.rangeEnd.count + 48 }
    static func size(_ r: Etcdserverpb_TxnRequest) -> Int {
        var n = 16
        for c in r.compare {
            n += c.key.count + c.rangeEnd.count + 24
            if case .value(let v) = c.targetUnion { n += v.count }
        }
        for op in r.success + r.failure {
            switch op.request {
            case .requestRange(let x): n += size(x)
            case .requestPut(let x): n += size(x)
            case .requestDeleteRange(let x): n += size(x)
            case .requestTxn(let x): n += size(x)
            case nil: n += 2
            }
        }
        return n
    }
}
