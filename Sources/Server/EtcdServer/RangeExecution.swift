import EtcdProto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MVCC

/// Executes a RangeRequest with etcd's semantics (etcd's applierV3backend.Range): the store
/// range (with limit+1 to detect `more`, no limit when sorting or filtering), then the
/// mod/create revision filters, sorting, limit, keys_only. `count` is the number of keys in
/// the range at the read revision, before filters and limit.
enum RangeExecution {
    static func run(_ r: Etcdserverpb_RangeRequest, on reader: some KVReader) throws(MVCCError) -> Etcdserverpb_RangeResponse {
        var limit = Int(clamping: r.limit)
        if r.sortOrder != .none || r.minModRevision != 0 || r.maxModRevision != 0
            || r.minCreateRevision != 0 || r.maxCreateRevision != 0 {
            limit = 0
        }
        // One more than asked, to tell whether there is `more` (a client's Int64.max stays
        // Int.max: no store holds that many keys).
        if limit > 0 && limit < Int.max { limit += 1 }
        let span = KeySpan.etcd(key: Array(r.key), rangeEnd: Array(r.rangeEnd))
        let rr = try reader.range(span, RangeOptions(revision: r.revision, limit: limit, countOnly: r.countOnly))
        var kvs = rr.kvs
        if r.maxModRevision != 0 { kvs.removeAll { $0.modRevision > r.maxModRevision } }
        if r.minModRevision != 0 { kvs.removeAll { $0.modRevision < r.minModRevision } }
        if r.maxCreateRevision != 0 { kvs.removeAll { $0.createRevision > r.maxCreateRevision } }
        if r.minCreateRevision != 0 { kvs.removeAll { $0.createRevision < r.minCreateRevision } }

        var order = r.sortOrder
        if r.sortTarget != .key && order == .none { order = .ascend }
        if order != .none {
            let ascending: (KeyValue, KeyValue) -> Bool
            switch r.sortTarget {
            case .key: ascending = { $0.key.lexicographicallyPrecedes($1.key) }
            case .version: ascending = { $0.version < $1.version }
            case .create: ascending = { $0.createRevision < $1.createRevision }
            case .mod: ascending = { $0.modRevision < $1.modRevision }
            case .value: ascending = { $0.value.lexicographicallyPrecedes($1.value) }
            case .UNRECOGNIZED: ascending = { $0.key.lexicographicallyPrecedes($1.key) }
            }
            if order == .descend {
                kvs.sort { ascending($1, $0) }
            } else if order == .ascend && r.sortTarget != .key {
                // Key order is the store's order already; an unknown order sorts nothing (etcd).
                kvs.sort(by: ascending)
            }
        }

        var resp = Etcdserverpb_RangeResponse()
        if r.limit > 0 && kvs.count > Int(clamping: r.limit) {
            kvs.removeLast(kvs.count - Int(clamping: r.limit))
            resp.more = true
        }
        resp.header.revision = rr.revision
        resp.count = Int64(rr.count)
        resp.kvs = kvs.map { ProtoConversion.keyValue($0, keysOnly: r.keysOnly) }
        return resp
    }
}

/// MVCC → protobuf conversions (also for the watch hub: `event(_:)`).
public enum ProtoConversion {
    public static func keyValue(_ kv: KeyValue, keysOnly: Bool = false) -> Mvccpb_KeyValue {
        var p = Mvccpb_KeyValue()
        p.key = Data(kv.key)
        if !keysOnly { p.value = Data(kv.value) }
        p.createRevision = kv.createRevision
        p.modRevision = kv.modRevision
        p.version = kv.version
        p.lease = kv.lease
        return p
    }

    public static func event(_ e: Event) -> Mvccpb_Event {
        var p = Mvccpb_Event()
        p.type = e.kind == .put ? .put : .delete
        p.kv = keyValue(e.kv)
        if let prev = e.prevKV { p.prevKv = keyValue(prev) }
        return p
    }
}
