import Dispatch
import EngineAPI
#if canImport(Glibc)
import Glibc
#endif

/// Start-up: reads the metadata and rebuilds the index with one sequential scan of the revision
/// records, parsing only each record's fixed header and key (no value copy, no protobuf).
enum StoreLoader {
    struct Loaded {
        var index: KeyIndex
        var revision: Int64
        var compactRevision: Int64
        var finishedCompactRevision: Int64
        var appliedIndex: UInt64
        var hasLayoutVersion: Bool
        /// Revisions still on disk that the compaction at `compactRevision` drops.
        var unfinishedDrops: [Revision]
    }

    /// One scanned record; its key lives in the scan's byte arena (no per-record allocation,
    /// no reference counting while sorting).
    struct Scanned {
        var keyOffset: Int
        var keyLength: Int
        var revision: IndexedRevision
        var createRevision: Int64
        var version: Int64
        var lease: Int64
    }

    static let layoutVersion: UInt64 = 1

    static func load(_ engine: any StorageEngine) throws(MVCCError) -> Loaded {
        let view: any ReadView
        do { view = try engine.readView() } catch { throw .engine("\(error)") }

        func meta(_ k: MetaKey) throws(MVCCError) -> UInt64? {
            let v: [UInt8]?
            do { v = try view.get(k.engineKey) } catch { throw .engine("\(error)") }
            guard let v else { return nil }
            return try MetaKey.decode(v, name: k.rawValue)
        }
        if let lv = try meta(.layoutVersion), lv != layoutVersion {
            throw .corruption("store layout version \(lv) in \(engine.directory) is not supported (this build reads \(layoutVersion))")
        }
        var revision = Int64(bitPattern: try meta(.currentRevision) ?? 0)
        // Never compacted: -1, as etcd (so that compacting at 0 or 1 on a new store succeeds).
        let compactRevision = try meta(.compactRevision).map { Int64(bitPattern: $0) } ?? -1
        let finished = try meta(.finishedCompactRevision).map { Int64(bitPattern: $0) } ?? -1
        let hasLayoutVersion = try meta(.layoutVersion) != nil
        let appliedIndex = try meta(.appliedIndex) ?? 0

        var scanned: [Scanned] = []
        var arena: [UInt8] = []
        var failure: MVCCError?
        do {
            try view.scan(StorageLayout.revisionRange, reverse: false, limit: nil) { k, v in
                guard let rev = StorageLayout.parseRevisionKey(k) else {
                    failure = .corruption("engine key of \(k.count) bytes in the revision namespace is not a revision key")
                    return false
                }
                do throws(MVCCError) {
                    let h = try RevisionRecord.parseHeader(v, revision: rev)
                    let offset = arena.count
                    arena.append(contentsOf: UnsafeRawBufferPointer(rebasing: v[RevisionRecord.headerSize ..< RevisionRecord.headerSize + h.keyLength]))
                    scanned.append(Scanned(keyOffset: offset, keyLength: h.keyLength,
                                           revision: IndexedRevision(revision: rev, isTombstone: h.isTombstone),
                                           createRevision: h.createRevision, version: h.version, lease: h.lease))
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

        if let last = scanned.last { revision = max(revision, last.revision.revision.main) }
        // An empty store is at revision 1 (etcd): the first write gets revision 2.
        revision = max(revision, compactRevision, 1)

        let entries = arena.withUnsafeBufferPointer { keys in
            scanned.withUnsafeBufferPointer { records in
                buildEntries(keys: keys, records: records)
            }
        }
        scanned = []
        arena = []
        var index = KeyIndex(sorted: entries)
        var dropped: [Revision] = []
        if compactRevision > 0 {
            index.compact(at: compactRevision, dropped: &dropped)
        }
        return Loaded(index: index, revision: revision, compactRevision: compactRevision,
                      finishedCompactRevision: finished, appliedIndex: appliedIndex,
                      hasLayoutVersion: hasLayoutVersion, unfinishedDrops: dropped)
    }

    /// Orders the records by (key, revision) and folds each key's records into a KeyHistory.
    /// Records arrive in revision order; runs of ascending keys (bulk loads) sort in near-linear
    /// time. The two halves sort in parallel, then merge.
    private static func buildEntries(keys: UnsafeBufferPointer<UInt8>, records: UnsafeBufferPointer<Scanned>) -> [KeyHistory] {
        let base = keys.baseAddress
        let ordering = KeyOrdering(keys: keys, records: records)
        let less = ordering.less
        let count = records.count
        var order = [Int32](unsafeUninitializedCapacity: count) { buf, n in
            for i in 0..<count { buf[i] = Int32(i) }
            n = count
        }
        let mid = count / 2
        order.withUnsafeMutableBufferPointer { o in
            let halves = [0..<mid, mid..<count]
            let shared = UnsafeSendableBuffer(o)
            DispatchQueue.concurrentPerform(iterations: 2) { h in
                var part = UnsafeMutableBufferPointer(rebasing: shared.buffer[halves[h]])
                part.sort(by: ordering.less)
            }
        }
        var merged = [Int32]()
        merged.reserveCapacity(count)
        var i = 0, j = mid
        while i < mid && j < count {
            if less(order[j], order[i]) { merged.append(order[j]); j += 1 } else { merged.append(order[i]); i += 1 }
        }
        merged.append(contentsOf: order[i..<mid])
        merged.append(contentsOf: order[j..<count])
        order = []

        var entries: [KeyHistory] = []
        var previous: Int32 = -1
        for idx in merged {
            let s = records[Int(idx)]
            let create = s.revision.isTombstone ? 0 : s.createRevision
            let version = s.revision.isTombstone ? 0 : s.version
            let lease = s.revision.isTombstone ? 0 : s.lease
            if previous >= 0 {
                let p = records[Int(previous)]
                if p.keyLength == s.keyLength && (s.keyLength == 0 || memcmp(base! + p.keyOffset, base! + s.keyOffset, s.keyLength) == 0) {
                    entries[entries.count - 1].append(s.revision, createRevision: create, version: version, lease: lease)
                    previous = idx
                    continue
                }
            }
            let key = Array(UnsafeBufferPointer(rebasing: keys[s.keyOffset ..< s.keyOffset + s.keyLength]))
            entries.append(KeyHistory(key: key, first: s.revision, createRevision: create, version: version, lease: lease))
            previous = idx
        }
        return entries
    }
}

/// The (key, scan position) order of scanned records, over raw buffers that outlive the sort.
private struct KeyOrdering: @unchecked Sendable {
    let keys: UnsafeBufferPointer<UInt8>
    let records: UnsafeBufferPointer<StoreLoader.Scanned>

    @inline(__always) func less(_ a: Int32, _ b: Int32) -> Bool {
        let ra = records[Int(a)], rb = records[Int(b)]
        let n = min(ra.keyLength, rb.keyLength)
        if n > 0 {
            let c = memcmp(keys.baseAddress! + ra.keyOffset, keys.baseAddress! + rb.keyOffset, n)
            if c != 0 { return c < 0 }
        }
        if ra.keyLength != rb.keyLength { return ra.keyLength < rb.keyLength }
        return a < b   // same key: revision order = scan order
    }
}

/// Lets the two sorting tasks share one buffer; they touch disjoint halves.
private struct UnsafeSendableBuffer: @unchecked Sendable {
    let buffer: UnsafeMutableBufferPointer<Int32>
    init(_ b: UnsafeMutableBufferPointer<Int32>) { buffer = b }
}
