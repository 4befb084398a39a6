import EngineAPI

/// Start-up: reads the metadata and rebuilds the index with one sequential scan of the revision
/// records, parsing only each record's fixed header and key (no value copy, no protobuf).
enum StoreLoader {
    struct Loaded {
        var index: KeyIndex
        var revision: Int64
        var compactRevision: Int64
        var finishedCompactRevision: Int64
        var appliedIndex: UInt64
        /// Revisions still on disk that the compaction at `compactRevision` drops.
        var unfinishedDrops: [Revision]
    }

    /// One scanned record.
    private struct Scanned {
        var key: [UInt8]
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
        // An empty store is at revision 1, as etcd's: the first write gets revision 2.
        var revision = Int64(bitPattern: try meta(.currentRevision) ?? 1)
        let compactRevision = Int64(bitPattern: try meta(.compactRevision) ?? 0)
        let finished = Int64(bitPattern: try meta(.finishedCompactRevision) ?? 0)
        let appliedIndex = try meta(.appliedIndex) ?? 0

        var scanned: [Scanned] = []
        var failure: MVCCError?
        do {
            try view.scan(StorageLayout.revisionRange, reverse: false, limit: nil) { k, v in
                guard let rev = StorageLayout.parseRevisionKey(k) else {
                    failure = .corruption("engine key of \(k.count) bytes in the revision namespace is not a revision key")
                    return false
                }
                do throws(MVCCError) {
                    let h = try RevisionRecord.parseHeader(v, revision: rev)
                    let key = Array(UnsafeRawBufferPointer(rebasing: v[RevisionRecord.headerSize ..< RevisionRecord.headerSize + h.keyLength]))
                    scanned.append(Scanned(key: key, revision: IndexedRevision(revision: rev, isTombstone: h.isTombstone),
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
        revision = max(revision, compactRevision)

        // Order by (key, revision). Records arrive in revision order; runs of ascending keys
        // (the common bulk-load pattern) make this close to linear.
        var order = Array(0 ..< scanned.count)
        scanned.withUnsafeBufferPointer { s in
            order.sort { a, b in
                let c = compareBytes(s[a].key, s[b].key)
                return c != 0 ? c < 0 : s[a].revision.revision < s[b].revision.revision
            }
        }
        var entries: [KeyHistory] = []
        entries.reserveCapacity(scanned.count)
        for i in order {
            let s = scanned[i]
            let create = s.revision.isTombstone ? 0 : s.createRevision
            let version = s.revision.isTombstone ? 0 : s.version
            let lease = s.revision.isTombstone ? 0 : s.lease
            if let lastIdx = entries.indices.last, entries[lastIdx].key == s.key {
                entries[lastIdx].append(s.revision, createRevision: create, version: version, lease: lease)
            } else {
                entries.append(KeyHistory(key: s.key, first: s.revision, createRevision: create,
                                          version: version, lease: lease))
            }
        }
        scanned = []
        var index = KeyIndex(sorted: entries)
        var dropped: [Revision] = []
        if compactRevision > 0 {
            index.compact(at: compactRevision, dropped: &dropped)
        }
        return Loaded(index: index, revision: revision, compactRevision: compactRevision,
                      finishedCompactRevision: finished, appliedIndex: appliedIndex, unfinishedDrops: dropped)
    }
}
