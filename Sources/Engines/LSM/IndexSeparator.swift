import EngineAPI

/// Short index keys (LevelDB's FindShortestSeparator / FindShortSuccessor, on internal keys).
///
/// The index entry of data block i needs a key k with last(i) <= k < first(i+1) (and
/// k >= last key, for the last block): a lookup takes the first block whose index key is >=
/// the target. Any such k works, so the shortest is chosen: index blocks get smaller and so
/// does the index each open table keeps in memory. When the user key is shortened, the
/// trailer is 0 (sequence 0, the smallest trailer, so the key sorts after every entry of that
/// user key; 0 is also a one-byte tag in the block).
enum IndexSeparator {
    /// A short internal key k with a <= k < b, for internal keys a < b.
    static func between(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> [UInt8] {
        a.withUnsafeBytes { a in
            let ua = userKey(a), ub = userKey(b)
            let n = min(ua.count, ub.count)
            var d = 0
            while d < n && ua[d] == ub[d] { d += 1 }
            // Same user key, or one a prefix of the other: nothing shorter fits.
            guard d < n else { return Array(a) }
            // ua[d] < ub[d]. Shortest user key s with ua < s < ub: ua[0...d] with ua[d] + 1
            // when that is still below ub[d]; else ua[0...d] followed by ua's next byte that
            // can be incremented, incremented (greater than ua, and below ub at byte d).
            var j = d
            if !(ua[d] < 0xFF && ua[d] + 1 < ub[d]) {
                j = d + 1
                while j < ua.count && ua[j] == 0xFF { j += 1 }
                guard j < ua.count, j + 1 < ua.count else { return Array(a) } // nothing shorter
            }
            var s = Array(UnsafeRawBufferPointer(rebasing: ua[0..<j]))
            s.append(ua[j] + 1)
            s.appendFixed64(0)
            return s
        }
    }

    /// A short internal key k >= a, for the last block of a table.
    static func successor(_ a: [UInt8]) -> [UInt8] {
        a.withUnsafeBytes { a in
            let ua = userKey(a)
            guard let j = ua.firstIndex(where: { $0 != 0xFF }), j + 1 < ua.count else { return Array(a) }
            var s = Array(UnsafeRawBufferPointer(rebasing: ua[0..<j]))
            s.append(ua[j] + 1)
            s.appendFixed64(0)
            return s
        }
    }
}
