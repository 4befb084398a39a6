/// The shared, append-only storage of one key's index entry: the key's bytes, then its
/// revisions, two words each (main, then sub with the tombstone flag in the top bit).
///
/// Copies of a `KeyHistory` (the writer's and the snapshots readers hold) share one storage
/// and each sees only its first `count` revisions. The writer appends in place when no copy
/// has appended past its own view (`used == count`) and there is room; otherwise it copies.
/// So revisions below any copy's `count` are never written again: readers on other threads
/// read only those (and the immutable key), the writer writes only at `used`, and readers
/// get the written words through the lock that publishes their snapshot.
///
/// Safe to share between threads by that rule (only the store's single writer appends or reads
/// `used`); `ManagedBuffer` cannot be `Sendable`, so `KeyHistory` is `@unchecked Sendable`.
final class HistoryStorage: ManagedBuffer<HistoryStorage.Header, UInt64> {
    struct Header {
        var keyLength: Int
        /// Revisions written (by the writer; readers never read it).
        var used: Int
        /// Room for this many revisions.
        var capacity: Int
    }

    static let tombstoneBit: UInt64 = 1 << 63

    /// New storage holding `key` and no revisions.
    static func make(key: UnsafeRawBufferPointer, capacity: Int) -> HistoryStorage {
        let keyWords = (key.count + 7) / 8
        let buffer = HistoryStorage.create(minimumCapacity: keyWords + 2 * capacity) { _ in
            Header(keyLength: key.count, used: 0, capacity: capacity)
        }
        let s = unsafeDowncast(buffer, to: HistoryStorage.self)
        if let base = key.baseAddress, key.count > 0 {
            s.withUnsafeMutablePointerToElements { e in
                e[keyWords - 1] = 0
                UnsafeMutableRawPointer(e).copyMemory(from: base, byteCount: key.count)
            }
        }
        return s
    }

    /// A new storage with the same key and the revisions `from ..< to` of this one, with room
    /// for `capacity` revisions.
    func copy(from: Int, to: Int, capacity: Int) -> HistoryStorage {
        let s = withKey { HistoryStorage.make(key: $0, capacity: capacity) }
        let n = to - from
        if n > 0 {
            let srcOffset = keyWords + 2 * from
            withUnsafeMutablePointerToElements { src in
                s.withUnsafeMutablePointerToElements { dst in
                    (dst + s.keyWords).update(from: src + srcOffset, count: 2 * n)
                }
            }
        }
        s.withUnsafeMutablePointerToHeader { $0.pointee.used = n }
        return s
    }

    /// Words the key takes (reads only the immutable `keyLength`, never the whole header).
    @inline(__always) var keyWords: Int { withUnsafeMutablePointerToHeader { ($0.pointee.keyLength + 7) / 8 } }

    /// Revisions written so far. Writer only.
    @inline(__always) var used: Int { withUnsafeMutablePointerToHeader { $0.pointee.used } }
    /// Room for this many revisions.
    @inline(__always) var revisionCapacity: Int { withUnsafeMutablePointerToHeader { $0.pointee.capacity } }

    @inline(__always) func withKey<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeMutablePointers { h, e in
            try body(UnsafeRawBufferPointer(start: UnsafeRawPointer(e), count: h.pointee.keyLength))
        }
    }

    @inline(__always) func revision(at i: Int) -> IndexedRevision {
        withUnsafeMutablePointers { h, e in
            let p = e + (h.pointee.keyLength + 7) / 8 + 2 * i
            let sub = p[1]
            return IndexedRevision(revision: Revision(main: Int64(bitPattern: p[0]),
                                                      sub: Int64(bitPattern: sub & ~HistoryStorage.tombstoneBit)),
                                   isTombstone: sub & HistoryStorage.tombstoneBit != 0)
        }
    }

    /// Main revision of revision `i` (for binary searches).
    @inline(__always) func main(at i: Int) -> Int64 {
        withUnsafeMutablePointers { h, e in
            Int64(bitPattern: e[(h.pointee.keyLength + 7) / 8 + 2 * i])
        }
    }

    /// Writes revision number `used` and counts it. Writer only; requires `used < capacity`.
    @inline(__always) func appendInPlace(_ r: IndexedRevision) {
        withUnsafeMutablePointers { h, e in
            precondition(h.pointee.used < h.pointee.capacity)
            precondition(r.revision.sub >= 0, "HistoryStorage: negative sub revision")
            let p = e + (h.pointee.keyLength + 7) / 8 + 2 * h.pointee.used
            p[0] = UInt64(bitPattern: r.revision.main)
            p[1] = UInt64(bitPattern: r.revision.sub) | (r.isTombstone ? HistoryStorage.tombstoneBit : 0)
            h.pointee.used += 1
        }
    }
}
