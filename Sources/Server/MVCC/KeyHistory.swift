#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One revision of a key in the in-memory index.
struct IndexedRevision: Sendable, Hashable {
    var revision: Revision
    var isTombstone: Bool
}

/// The index entry of one user key: the revisions of its records still in the store, plus the
/// state of its latest version (so that puts and compares need no record read).
///
/// Revisions are kept flat (etcd keeps "generations"; a generation ends at a tombstone, which
/// here is just a revision flagged `isTombstone`), ascending, in a `HistoryStorage` shared by
/// copies and appended in place: appending costs no copy of the history even while readers'
/// snapshots hold the entry. An entry holds ONE reference (key and revisions live in the
/// storage), so copying a leaf of entries costs one retain per entry.
///
/// `@unchecked Sendable`: the storage is shared across threads under `HistoryStorage`'s rule
/// (copies never see revisions written after them; only the single writer appends).
struct KeyHistory: @unchecked Sendable {
    /// Key bytes and revisions `0 ..< count` (this copy's view; see `HistoryStorage`).
    private(set) var storage: HistoryStorage
    /// The key's first 8 bytes, big-endian, zero-padded: most comparisons in a search end here
    /// without touching the storage (another cache line).
    let keyPrefix: UInt64
    /// Number of revisions held (>= 1); the last one is `latest`.
    private(set) var count: Int32
    let keyLength: Int32
    /// `latest`, also kept inline (reads at the current revision — puts, ranges, counts — need
    /// no access to the storage).
    private(set) var latest: IndexedRevision
    /// State of the latest version; zero when `latest` is a tombstone.
    var createRevision: Int64
    var version: Int64
    var lease: Int64

    init(key: [UInt8], first: IndexedRevision, createRevision: Int64, version: Int64, lease: Int64) {
        storage = key.withUnsafeBytes { HistoryStorage.make(key: $0, capacity: 1) }
        storage.appendInPlace(first)
        latest = first
        keyPrefix = SearchKey.prefix(of: key)
        keyLength = Int32(key.count)
        count = 1
        self.createRevision = createRevision
        self.version = version
        self.lease = lease
    }

    /// The key (a new array; prefer `compare(_:)` / `withKey` on hot paths).
    var key: [UInt8] { storage.withKey { Array($0) } }

    /// Calls `body` with the key's bytes.
    @inline(__always) func withKey<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withKey(body)
    }

    /// Bytewise order of this entry's key against `other` (<0, 0, >0), like `compareBytes`.
    @inline(__always) func compare(_ other: [UInt8]) -> Int {
        compare(SearchKey(other))
    }

    /// Bytewise order against a search key: the inline prefixes first, the storage only when
    /// they are equal and a key is longer than 8 bytes.
    @inline(__always) func compare(_ other: SearchKey) -> Int {
        if keyPrefix != other.prefix { return keyPrefix < other.prefix ? -1 : 1 }
        let n = Int(keyLength)
        if n <= 8 || other.bytes.count <= 8 {
            return n == other.bytes.count ? 0 : (n < other.bytes.count ? -1 : 1)
        }
        return storage.withKey { a in
            other.bytes.withUnsafeBufferPointer { b in
                let m = min(a.count, b.count) - 8
                if m > 0, let x = a.baseAddress, let y = b.baseAddress {
                    let c = memcmp(x + 8, y + 8, m)
                    if c != 0 { return c < 0 ? -1 : 1 }
                }
                return a.count == b.count ? 0 : (a.count < b.count ? -1 : 1)
            }
        }
    }

    var isLive: Bool { !latest.isTombstone }
    /// Number of revisions before `latest`.
    var olderCount: Int { Int(count) - 1 }
    /// Revision `i` of `0 ..< count`, ascending (`count - 1` is `latest`).
    func revision(at i: Int) -> IndexedRevision {
        precondition(i >= 0 && i < Int(count), "KeyHistory: revision index out of range")
        return storage.revision(at: i)
    }

    /// Records a newer revision (a put with the given state, or a tombstone).
    mutating func append(_ r: IndexedRevision, createRevision: Int64, version: Int64, lease: Int64) {
        precondition(count < Int32.max, "KeyHistory: too many revisions of one key")
        let n = Int(count)
        if storage.used != n || n == storage.revisionCapacity {
            storage = storage.copy(from: 0, to: n, capacity: max(4, 2 * n))
        }
        storage.appendInPlace(r)
        count += 1
        latest = r
        self.createRevision = createRevision
        self.version = version
        self.lease = lease
    }

    /// Number of revisions with main <= rev (binary search).
    private func countAtOrBelow(_ rev: Int64) -> Int {
        var lo = 0, hi = Int(count)
        while lo < hi {
            let mid = (lo + hi) / 2
            if storage.main(at: mid) <= rev { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The revision visible at main revision `rev`: the newest one with main <= rev, unless it
    /// is a tombstone (then the key does not exist at `rev`).
    func visibleRevision(at rev: Int64) -> Revision? {
        let last = latest
        if last.revision.main <= rev {
            return last.isTombstone ? nil : last.revision
        }
        let n = countAtOrBelow(rev)
        guard n > 0 else { return nil }
        let r = storage.revision(at: n - 1)
        return r.isTombstone ? nil : r.revision
    }

    /// Whether `compact(at: rev)` would change anything.
    func needsCompaction(at rev: Int64) -> Bool {
        let last = latest
        if last.revision.main <= rev { return count > 1 || last.isTombstone }
        return count > 1 && storage.main(at: 0) <= rev
    }

    /// Drops what a compaction at `rev` makes unreachable (etcd's rule): every revision older
    /// than the newest one with main <= rev, and that one too when it is a tombstone. Dropped
    /// revisions are appended to `dropped`. Returns false when nothing is left (remove the key).
    mutating func compact(at rev: Int64, dropped: inout [Revision]) -> Bool {
        let below = countAtOrBelow(rev)
        guard below > 0 else { return true }
        var keepFrom = below - 1
        if storage.revision(at: keepFrom).isTombstone { keepFrom += 1 }
        guard keepFrom > 0 else { return true }
        for i in 0..<keepFrom { dropped.append(storage.revision(at: i).revision) }
        let n = Int(count)
        if keepFrom == n { return false }
        storage = storage.copy(from: keepFrom, to: n, capacity: n - keepFrom)
        count -= Int32(keepFrom)
        return true
    }

    /// Every revision held, ascending.
    var allRevisions: [IndexedRevision] { (0..<Int(count)).map { storage.revision(at: $0) } }
}

/// A key being searched for, with its 8-byte prefix computed once (see `KeyHistory.compare`).
struct SearchKey {
    let bytes: [UInt8]
    let prefix: UInt64

    @inline(__always) init(_ bytes: [UInt8]) {
        self.bytes = bytes
        prefix = SearchKey.prefix(of: bytes)
    }

    /// The first 8 bytes, big-endian (so that integer order is byte order), zero-padded.
    @inline(__always) static func prefix(of key: [UInt8]) -> UInt64 {
        key.withUnsafeBytes { b in
            if b.count >= 8 { return UInt64(bigEndian: b.loadUnaligned(as: UInt64.self)) }
            var p: UInt64 = 0
            for i in 0..<b.count { p |= UInt64(b[i]) << (56 - 8 * i) }
            return p
        }
    }
}
