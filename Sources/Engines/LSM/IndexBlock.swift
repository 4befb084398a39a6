/// A table's index block, decoded once when the table is opened and kept with it: the last
/// internal key of every data block (contiguous bytes) and the block's parsed handle, so a
/// lookup is one binary search and no decoding.
struct IndexBlock {
    private let keyBytes: [UInt8]
    /// keyOffsets[i] ..< keyOffsets[i+1] is key i in `keyBytes`.
    private let keyOffsets: [Int]
    let handles: [BlockHandle]

    var count: Int { handles.count }

    /// Decodes index block contents; nil when malformed.
    init?(_ raw: UnsafeRawBufferPointer) {
        guard let block = Block(raw) else { return nil }
        let cursor = BlockCursor()
        cursor.reset(block)
        var keyBytes: [UInt8] = []
        var offsets: [Int] = [0]
        var handles: [BlockHandle] = []
        var ok = cursor.seekToFirst()
        while ok && cursor.isValid {
            guard let h = BlockHandle.decode(cursor.value) else { return nil }
            keyBytes.append(contentsOf: cursor.key)
            offsets.append(keyBytes.count)
            handles.append(h)
            ok = cursor.next()
        }
        guard ok else { return nil }
        // Block i holds keys in (key i-1, key i]: the keys must rise strictly, or a binary
        // search over them would send a lookup to the wrong block.
        for i in 1..<max(handles.count, 1) {
            let earlier = keyBytes[offsets[i - 1]..<offsets[i]], later = keyBytes[offsets[i]..<offsets[i + 1]]
            let rising = earlier.withUnsafeBytes { a in later.withUnsafeBytes { b in compareInternalKeys(a, b) < 0 } }
            guard rising else { return nil }
        }
        self.keyBytes = keyBytes
        self.keyOffsets = offsets
        self.handles = handles
    }

    /// Calls `body` with key `i` (0 ..< count): the last key of data block `i`.
    func withKey<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try keyBytes.withUnsafeBytes { kb in
            try body(UnsafeRawBufferPointer(rebasing: kb[keyOffsets[i]..<keyOffsets[i + 1]]))
        }
    }

    /// First block whose last key >= target (internal key order), or `count`.
    func lowerBound(_ target: UnsafeRawBufferPointer) -> Int {
        keyBytes.withUnsafeBytes { kb in
            keyOffsets.withUnsafeBufferPointer { ko in
                var lo = 0, hi = handles.count
                while lo < hi {
                    let mid = (lo &+ hi) >> 1
                    let s = ko[mid], e = ko[mid &+ 1]
                    let k = UnsafeRawBufferPointer(start: kb.baseAddress! + s, count: e &- s)
                    if compareInternalKeys(k, target) < 0 { lo = mid &+ 1 } else { hi = mid }
                }
                return lo
            }
        }
    }
}
