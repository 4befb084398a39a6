/// One revision of a key in the in-memory index.
struct IndexedRevision: Sendable, Hashable {
    var revision: Revision
    var isTombstone: Bool
}

/// The index entry of one user key: the revisions of its records still in the store, plus the
/// state of its latest version (so that puts and compares need no record read).
///
/// Revisions are kept flat (etcd keeps "generations"; a generation ends at a tombstone, which
/// here is just a revision flagged `isTombstone`). The latest revision is stored inline and the
/// older ones in `older`, which stays unallocated for the common key with one live revision.
struct KeyHistory: Sendable {
    var key: [UInt8]
    /// Revisions before `latest`, ascending.
    var older: [IndexedRevision]
    var latest: IndexedRevision
    /// State of the latest version; zero when `latest` is a tombstone.
    var createRevision: Int64
    var version: Int64
    var lease: Int64

    var isLive: Bool { !latest.isTombstone }

    init(key: [UInt8], first: IndexedRevision, createRevision: Int64, version: Int64, lease: Int64) {
        self.key = key
        self.older = []
        self.latest = first
        self.createRevision = createRevision
        self.version = version
        self.lease = lease
    }

    /// Records a newer revision (a put with the given state, or a tombstone).
    mutating func append(_ r: IndexedRevision, createRevision: Int64, version: Int64, lease: Int64) {
        older.append(latest)
        latest = r
        self.createRevision = createRevision
        self.version = version
        self.lease = lease
    }

    /// The revision visible at main revision `rev`: the newest one with main <= rev, unless it
    /// is a tombstone (then the key does not exist at `rev`).
    func visibleRevision(at rev: Int64) -> Revision? {
        if latest.revision.main <= rev {
            return latest.isTombstone ? nil : latest.revision
        }
        // Binary search in `older` for the last element with main <= rev.
        var lo = 0, hi = older.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if older[mid].revision.main <= rev { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        let r = older[lo - 1]
        return r.isTombstone ? nil : r.revision
    }

    /// Drops what a compaction at `rev` makes unreachable (etcd's rule): every revision older
    /// than the newest one with main <= rev, and that one too when it is a tombstone. Dropped
    /// revisions are appended to `dropped`. Returns false when nothing is left (remove the key).
    mutating func compact(at rev: Int64, dropped: inout [Revision]) -> Bool {
        if latest.revision.main <= rev {
            for r in older { dropped.append(r.revision) }
            older = []
            if latest.isTombstone {
                dropped.append(latest.revision)
                return false
            }
            return true
        }
        var lo = 0, hi = older.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if older[mid].revision.main <= rev { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return true }
        var keepFrom = lo - 1
        if older[keepFrom].isTombstone { keepFrom += 1 }
        if keepFrom > 0 {
            for r in older[..<keepFrom] { dropped.append(r.revision) }
            older.removeFirst(keepFrom)
        }
        return true
    }

    /// Every revision held, ascending.
    var allRevisions: [IndexedRevision] { older + [latest] }
}
