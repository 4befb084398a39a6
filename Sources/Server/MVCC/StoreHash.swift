import EngineAPI

/// The result of `MVCCStore.hashKV(revision:)`.
public struct KVHash: Sendable, Hashable {
    /// CRC-32C over the revision records the hash covers (see `MVCCStore.hashKV`).
    public var hash: UInt32
    /// The store's current revision when the hash was taken.
    public var currentRevision: Int64
    /// The revision of the last compaction, -1 when the store was never compacted (etcd's value).
    public var compactRevision: Int64
}

/// Read-only hashes of the store for consistency checks (etcd's Maintenance.Hash and HashKV).
///
/// Both read one engine read view, so they are consistent with themselves and never block or
/// wait for writes.
extension MVCCStore {
    /// HashKV at `revision` (0: the current revision), computed exactly as etcd 3.4's
    /// `store.HashByRev`, so the numbers equal etcd's for the same history (and are equal
    /// across rusd's engines):
    ///
    /// CRC-32C (Castagnoli) over the bytes "key" followed by, for each revision record with
    /// main revision <= `revision` in ascending revision order, etcd's bbolt key (main 8 BE,
    /// "_", sub 8 BE, plus "t" for a deletion) and etcd's bbolt value (the protobuf
    /// mvccpb.KeyValue: key, create_revision, mod_revision, version, value, lease; a deletion
    /// holds only the key). Records at or below the compaction revision count only when they
    /// are the newest version of their key at `revision` and not a deletion (etcd's
    /// `kvindex.Keep(rev)`); when no key qualifies at all, etcd hashes every such record still
    /// in its file, which after its compaction finishes are the newest non-deleted versions at
    /// the compaction revision: rusd hashes those. The result depends only on the logical
    /// history, not on how far a physical compaction has got.
    ///
    /// A negative `revision` hashes no record (etcd: nothing is below it), only "key".
    ///
    /// Errors: `revision` > 0 and <= the compaction revision → `.compacted`; above the current
    /// revision → `.futureRevision`.
    public func hashKV(revision: Int64) throws(MVCCError) -> KVHash {
        let view: any ReadView
        do { view = try engine.readView() } catch { throw .engine("\(error)") }
        let (current, compacted) = try Self.revisions(of: view)
        if revision > 0 && revision <= compacted { throw .compacted }
        if revision > current { throw .futureRevision }
        if revision < 0 {
            // etcd hashes the records below main revision `revision` + 1: none.
            var crc = CRC32C()
            crc.update(Array("key".utf8))
            return KVHash(hash: crc.value, currentRevision: current, compactRevision: compacted > 0 ? compacted : -1)
        }
        let upper = revision > 0 ? revision : current
        let range = StorageLayout.revisionRange(fromMain: 0, throughMain: upper)

        // Pass 1 (only after a compaction): which records at or below it count.
        var keep = Set<Revision>()
        if compacted > 0 {
            var keepAtRevision = Set<Revision>(), keepAtCompaction = Set<Revision>()
            var seenAtRevision = Set<[UInt8]>(), seenAtCompaction = Set<[UInt8]>()
            var anyLive = false
            try Self.forEachRecord(view, range, reverse: true) { rev, h, key, _ in
                let k = Array(key)
                let newest = seenAtRevision.insert(k).inserted
                if newest && !h.isTombstone { anyLive = true }
                if rev.main <= compacted {
                    if newest && !h.isTombstone { keepAtRevision.insert(rev) }
                    if seenAtCompaction.insert(k).inserted && !h.isTombstone { keepAtCompaction.insert(rev) }
                }
            }
            keep = anyLive ? keepAtRevision : keepAtCompaction
        }

        // Pass 2: etcd's bytes, in revision order.
        var crc = CRC32C()
        crc.update(Array("key".utf8))
        var scratch: [UInt8] = []
        try Self.forEachRecord(view, range, reverse: false) { rev, h, key, value in
            if rev.main <= compacted && !keep.contains(rev) { return }
            crc.update(bigEndian: UInt64(bitPattern: rev.main))
            crc.update([UInt8(ascii: "_")])
            crc.update(bigEndian: UInt64(bitPattern: rev.sub))
            if h.isTombstone { crc.update([UInt8(ascii: "t")]) }
            scratch.removeAll(keepingCapacity: true)
            EtcdKeyValueEncoding.append(to: &scratch, key: key, createRevision: h.isTombstone ? 0 : h.createRevision,
                                        modRevision: h.isTombstone ? 0 : rev.main, version: h.isTombstone ? 0 : h.version,
                                        value: h.isTombstone ? UnsafeRawBufferPointer(start: nil, count: 0) : value,
                                        lease: h.isTombstone ? 0 : h.lease)
            crc.update(scratch)
        }
        return KVHash(hash: crc.value, currentRevision: current, compactRevision: compacted > 0 ? compacted : -1)
    }

    /// Visits the revision records of `range` with their parsed header, key and value.
    static func forEachRecord(_ view: any ReadView, _ range: KeyRange, reverse: Bool,
                              _ visit: (Revision, RevisionRecord.Header, UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) throws(MVCCError) {
        var failure: MVCCError?
        do {
            try view.scan(range, reverse: reverse, limit: nil) { k, v in
                guard let rev = StorageLayout.parseRevisionKey(k) else {
                    failure = .corruption("engine key of \(k.count) bytes in the revision namespace is not a revision key")
                    return false
                }
                do throws(MVCCError) {
                    let h = try RevisionRecord.parseHeader(v, revision: rev)
                    let keyEnd = RevisionRecord.headerSize + h.keyLength
                    visit(rev, h, UnsafeRawBufferPointer(rebasing: v[RevisionRecord.headerSize ..< keyEnd]),
                          UnsafeRawBufferPointer(rebasing: v[keyEnd...]))
                } catch {
                    failure = error
                    return false
                }
                return true
            }
        } catch {
            throw .engine("\(error)")
        }
        if let failure { throw failure }
    }

    /// Hash of the whole store (etcd's Maintenance.Hash): CRC-32C over every engine key and
    /// value of one read view, in key order (key length 8 BE, key, value length 8 BE, value).
    /// Unlike `hashKV` it covers metadata and not-yet-removed compacted records, so it is equal
    /// across engines only for stores in the same physical state. Returns the current revision.
    public func hashAll() throws(MVCCError) -> (hash: UInt32, currentRevision: Int64) {
        let view: any ReadView
        do { view = try engine.readView() } catch { throw .engine("\(error)") }
        let (current, _) = try Self.revisions(of: view)
        var crc = CRC32C()
        do {
            try view.scan(.all, reverse: false, limit: nil) { k, v in
                crc.update(bigEndian: UInt64(k.count))
                crc.update(k)
                crc.update(bigEndian: UInt64(v.count))
                crc.update(v)
                return true
            }
        } catch {
            throw .engine("\(error)")
        }
        return (crc.value, current)
    }

    /// The current and compaction revisions recorded in `view` (as `StoreLoader` derives them).
    static func revisions(of view: any ReadView) throws(MVCCError) -> (current: Int64, compacted: Int64) {
        func meta(_ k: MetaKey) throws(MVCCError) -> Int64? {
            let v: [UInt8]?
            do { v = try view.get(k.engineKey) } catch { throw .engine("\(error)") }
            guard let v else { return nil }
            return Int64(bitPattern: try MetaKey.decode(v, name: k.rawValue))
        }
        let compacted = try meta(.compactRevision) ?? 0
        var current = try meta(.currentRevision) ?? 1
        var last: Int64 = 0
        do {
            try view.scan(StorageLayout.revisionRange, reverse: true, limit: 1) { k, _ in
                last = StorageLayout.parseRevisionKey(k)?.main ?? 0
                return false
            }
        } catch {
            throw .engine("\(error)")
        }
        current = max(current, last, compacted)
        return (current, compacted)
    }
}
