import EtcdProto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MVCC

/// Evaluates Txn compares and runs the chosen branch with etcd's semantics (etcd's
/// applierV3backend.Txn): the compares of every nested txn on the chosen path are evaluated
/// first against the state before the txn; then the chosen operations run in order inside ONE
/// store transaction (one main revision, sub revisions in op order).
enum TxnExecution {
    /// Whether the txn writes in any branch (etcd's isTxnReadonly, negated).
    static func isWrite(_ t: Etcdserverpb_TxnRequest) -> Bool {
        for op in t.success + t.failure {
            switch op.request {
            case .requestPut, .requestDeleteRange: return true
            case .requestTxn(let n): if isWrite(n) { return true }
            default: break
            }
        }
        return false
    }

    /// The branch decisions along the executed path, depth first (etcd's compareToPath).
    static func path(_ t: Etcdserverpb_TxnRequest, _ reader: some KVReader) -> [Bool] {
        let ok = t.compare.allSatisfy { compare($0, reader) }
        var out = [ok]
        for op in ok ? t.success : t.failure {
            if case .requestTxn(let n) = op.request { out += path(n, reader) }
        }
        return out
    }

    static func compare(_ c: Etcdserverpb_Compare, _ reader: some KVReader) -> Bool {
        let key = Array(c.key)
        // Fast path: one key, a metadata target (no record read).
        if c.rangeEnd.isEmpty && c.target != .value {
            let m = reader.latestMetadata(key)
            let kv = KeyValue(key: key, value: [], createRevision: m?.createRevision ?? 0,
                              modRevision: m?.modRevision ?? 0, version: m?.version ?? 0, lease: m?.lease ?? 0)
            return compareKV(c, kv)
        }
        guard let rr = try? reader.range(KeySpan.etcd(key: key, rangeEnd: Array(c.rangeEnd)), RangeOptions()) else {
            return false
        }
        if rr.kvs.isEmpty {
            if c.target == .value { return false }
            return compareKV(c, KeyValue(key: [], value: [], createRevision: 0, modRevision: 0, version: 0, lease: 0))
        }
        return rr.kvs.allSatisfy { compareKV(c, $0) }
    }

    static func compareKV(_ c: Etcdserverpb_Compare, _ kv: KeyValue) -> Bool {
        let result: Int
        func cmp(_ a: Int64, _ b: Int64) -> Int { a < b ? -1 : (a > b ? 1 : 0) }
        switch c.target {
        case .value:
            var v = Data()
            if case .value(let x) = c.targetUnion { v = x }
            let target = Array(v)
            result = kv.value == target ? 0 : (kv.value.lexicographicallyPrecedes(target) ? -1 : 1)
        case .create:
            var t: Int64 = 0
            if case .createRevision(let x) = c.targetUnion { t = x }
            result = cmp(kv.createRevision, t)
        case .mod:
            var t: Int64 = 0
            if case .modRevision(let x) = c.targetUnion { t = x }
            result = cmp(kv.modRevision, t)
        case .version:
            var t: Int64 = 0
            if case .version(let x) = c.targetUnion { t = x }
            result = cmp(kv.version, t)
        case .lease:
            var t: Int64 = 0
            if case .lease(let x) = c.targetUnion { t = x }
            result = cmp(kv.lease, t)
        case .UNRECOGNIZED:
            return true
        }
        switch c.result {
        case .equal: return result == 0
        case .notEqual: return result != 0
        case .greater: return result > 0
        case .less: return result < 0
        case .UNRECOGNIZED: return true
        }
    }

    /// The operations on the executed path, flattened (for pre-checks).
    static func visitPath(_ t: Etcdserverpb_TxnRequest, _ path: inout ArraySlice<Bool>,
                          _ visit: (Etcdserverpb_RequestOp) throws(EtcdError) -> Void) throws(EtcdError) {
        let ok = path.removeFirst()
        for op in ok ? t.success : t.failure {
            if case .requestTxn(let n) = op.request {
                try visitPath(n, &path, visit)
            } else {
                try visit(op)
            }
        }
    }

    /// etcd's checkRequests with checkRequestRange: a range on the path with an explicit
    /// revision must not be in the future nor compacted.
    static func checkRanges(_ t: Etcdserverpb_TxnRequest, _ path: [Bool], _ reader: some KVReader) throws(EtcdError) {
        var p = path[...]
        try visitPath(t, &p) { (op) throws(EtcdError) in
            guard case .requestRange(let r) = op.request, r.revision != 0 else { return }
            if r.revision > reader.readRevision { throw .futureRevision }
            if r.revision < reader.compactRevision { throw .compacted }
        }
    }

    /// Runs a read-only txn against `reader` (no store transaction needed).
    static func runReadOnly(_ t: Etcdserverpb_TxnRequest, _ reader: some KVReader) throws(EtcdError) -> Etcdserverpb_TxnResponse {
        let p = path(t, reader)
        try checkRanges(t, p, reader)
        var slice = p[...]
        var resp = try execute(t, &slice, reader: reader, writer: nil, leases: nil)
        resp.header.revision = reader.readRevision
        return resp
    }

    /// Executes the branch chosen by `path` (consumed depth first). Writes go to `writer`,
    /// which must be inside a store transaction when the txn writes.
    static func execute(_ t: Etcdserverpb_TxnRequest, _ path: inout ArraySlice<Bool>, reader: some KVReader,
                        writer: StoreWriter?, leases: Lessor?) throws(EtcdError) -> Etcdserverpb_TxnResponse {
        let ok = path.removeFirst()
        var resp = Etcdserverpb_TxnResponse()
        resp.header = Etcdserverpb_ResponseHeader()   // etcd sends an empty header in nested txns
        resp.succeeded = ok
        for op in ok ? t.success : t.failure {
            var r = Etcdserverpb_ResponseOp()
            switch op.request {
            case .requestRange(let q):
                do { r.responseRange = try RangeExecution.run(q, on: reader) } catch { throw EtcdError(error) }
            case .requestPut(let q):
                guard let writer else { preconditionFailure("write op in a read-only txn") }
                r.responsePut = try KVApply.put(q, writer, leases)
            case .requestDeleteRange(let q):
                guard let writer else { preconditionFailure("write op in a read-only txn") }
                r.responseDeleteRange = try KVApply.deleteRange(q, writer, leases)
            case .requestTxn(let n):
                r.responseTxn = try execute(n, &path, reader: reader, writer: writer, leases: leases)
            case nil:
                break
            }
            resp.responses.append(r)
        }
        return resp
    }
}
