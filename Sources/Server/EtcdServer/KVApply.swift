import EtcdProto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MVCC

/// Put and DeleteRange applied inside a store transaction (etcd's applierV3backend.Put and
/// DeleteRange). Response headers carry only the revision, as etcd's inner txn responses do;
/// the caller fills the top-level header.
enum KVApply {
    /// Checks that must pass before a put changes anything: the key must exist for
    /// ignore_value / ignore_lease, and the lease must exist.
    /// etcd checks a plain Put's lease before its key (apply.go put()), but a Txn's puts the
    /// other way round (checkRequestPut): `inTxn` picks the order, so the first error matches.
    static func precheck(_ p: Etcdserverpb_PutRequest, _ reader: some KVReader, _ leases: Lessor?, inTxn: Bool = false) throws(EtcdError) {
        let leaseMissing = p.lease != 0 && !(leases?.exists(p.lease) ?? false)
        if leaseMissing && !inTxn { throw .leaseNotFound }
        if p.ignoreValue || p.ignoreLease {
            if reader.latestMetadata(Array(p.key)) == nil { throw .keyNotFound }
        }
        if leaseMissing { throw .leaseNotFound }
    }

    static func put(_ p: Etcdserverpb_PutRequest, _ writer: StoreWriter, _ leases: Lessor?) throws(EtcdError) -> Etcdserverpb_PutResponse {
        let key = Array(p.key)
        var value = Array(p.value)
        var lease = p.lease
        var prev: KeyValue?
        do {
            if p.ignoreValue || p.ignoreLease || p.prevKv {
                prev = try writer.get(key)
            }
            if p.ignoreValue || p.ignoreLease {
                guard let prev else { throw EtcdError.keyNotFound }
                if p.ignoreValue { value = prev.value }
                if p.ignoreLease { lease = prev.lease }
            }
            let (_, prevLease) = try writer.put(key, value, lease: lease)
            if prevLease != lease {
                leases?.detach(key, from: prevLease)
                leases?.attach(key, to: lease)
            }
        } catch let e as EtcdError {
            throw e
        } catch let e as MVCCError {
            throw EtcdError(e)
        } catch {
            throw EtcdError(.unknown, "\(error)")
        }
        var resp = Etcdserverpb_PutResponse()
        resp.header.revision = writer.txnReadRevision
        if p.prevKv, let prev { resp.prevKv = ProtoConversion.keyValue(prev) }
        return resp
    }

    static func deleteRange(_ d: Etcdserverpb_DeleteRangeRequest, _ writer: StoreWriter, _ leases: Lessor?) throws(EtcdError) -> Etcdserverpb_DeleteRangeResponse {
        let deleted: [KeyValue]
        do {
            deleted = try writer.deleteRange(KeySpan.etcd(key: Array(d.key), rangeEnd: Array(d.rangeEnd)), wantPrevious: d.prevKv)
        } catch {
            throw EtcdError(error)
        }
        if let leases {
            for kv in deleted where kv.lease != 0 { leases.detach(kv.key, from: kv.lease) }
        }
        var resp = Etcdserverpb_DeleteRangeResponse()
        resp.header.revision = writer.txnReadRevision
        resp.deleted = Int64(deleted.count)
        if d.prevKv { resp.prevKvs = deleted.map { ProtoConversion.keyValue($0) } }
        return resp
    }
}
