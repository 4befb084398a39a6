// Table blocks.
//
// On disk a block is a sequence of entries
//     shared: varint     bytes shared with the previous key
//     unshared: varint   bytes of key that follow
//     valueLength: varint
//     key delta, value
// then `restartCount` UInt32 LE offsets of entries stored with shared == 0 (every 16th entry,
// or sooner when entries are large: see BlockBuilder),
// then restartCount: UInt32 LE. The block is followed in the file by a UInt32 LE CRC-32C of the
// block contents (the block handle's size excludes it).
//
// In memory a data block stays in this format (see `Block`): lookups binary-search the restart
// points on the raw bytes and scan at most one restart interval; iteration rebuilds one key at a
// time (BlockCursor.swift). Index blocks are decoded once per open table (IndexBlock.swift).

struct BlockHandle: Equatable {
    var offset: UInt64
    var size: UInt64

    func encode(into out: inout [UInt8]) {
        out.appendVarint(offset)
        out.appendVarint(size)
    }

    static func decode(_ bytes: UnsafeRawBufferPointer) -> BlockHandle? {
        var r = ByteReader(bytes)
        guard let o = r.varint(), let s = r.varint() else { return nil }
        return BlockHandle(offset: o, size: s)
    }
}

struct BlockBuilder {
    /// A restart point every 16 entries, or sooner once `restartBytes` of entries follow the
    /// last one: a lookup scans at most one interval entry by entry, each entry another cache
    /// line when values are large (etcd's are hundreds of bytes), so large entries get shorter
    /// intervals; small ones keep LevelDB's 16 for prefix compression. Readers take any interval
    /// (the restart array says where they are), so this is not part of the format.
    static let restartInterval = 16
    static let restartBytes = 1024
    private(set) var buffer: [UInt8] = []
    private var restarts: [UInt32] = [0]
    private var counter = 0
    private var lastKey: [UInt8] = []
    private(set) var entryCount = 0

    init() { buffer.reserveCapacity(8 << 10) }

    var isEmpty: Bool { entryCount == 0 }
    var estimatedSize: Int { buffer.count + restarts.count * 4 + 4 }

    mutating func add(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        var shared = 0
        if counter < BlockBuilder.restartInterval && buffer.count - Int(restarts[restarts.count - 1]) < BlockBuilder.restartBytes {
            let n = min(lastKey.count, key.count)
            lastKey.withUnsafeBufferPointer { lk in
                while shared < n && lk[shared] == key[shared] { shared += 1 }
            }
        } else {
            restarts.append(UInt32(buffer.count))
            counter = 0
        }
        buffer.appendVarint(UInt64(shared))
        buffer.appendVarint(UInt64(key.count - shared))
        buffer.appendVarint(UInt64(value.count))
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: key[shared...]))
        buffer.append(contentsOf: value)
        lastKey.removeAll(keepingCapacity: true)
        lastKey.append(contentsOf: key)
        counter += 1
        entryCount += 1
    }

    /// The finished block contents; the builder is reset.
    mutating func finish() -> [UInt8] {
        for r in restarts { buffer.appendFixed32(r) }
        buffer.appendFixed32(UInt32(restarts.count))
        let out = buffer
        buffer.removeAll(keepingCapacity: true)
        restarts = [0]
        counter = 0
        lastKey.removeAll(keepingCapacity: true)
        entryCount = 0
        return out
    }
}

/// A block in its on-disk format, searched and iterated in place (see `BlockCursor`). It points
/// into memory owned by someone else (a table's mapping), which must outlive it. Construction
/// checks the restart array only; entries are checked as cursors decode them.
struct Block {
    let base: UnsafeRawPointer
    /// Entries occupy base ..< base + dataLimit; the restart array follows.
    let dataLimit: Int
    let restartCount: Int

    /// The block whose contents are `raw`; nil when its restart array is malformed.
    init?(_ raw: UnsafeRawBufferPointer) {
        let count = raw.count
        guard count >= 4, let p = raw.baseAddress else { return nil }
        let restarts = Int(loadFixed32(raw, count - 4))
        guard restarts >= 1, restarts <= (count - 4) / 4 else { return nil }
        let limit = count - 4 - restarts * 4
        guard loadFixed32(raw, limit) == 0 else { return nil }
        var previous = 0
        for i in 1..<restarts {
            // Increasing offsets inside the entries.
            let r = Int(loadFixed32(raw, limit + 4 * i))
            guard r > previous, r < limit else { return nil }
            previous = r
        }
        base = p
        dataLimit = limit
        restartCount = restarts
    }

    var isEmpty: Bool { dataLimit == 0 }

    /// Offset of restart point `i`.
    @inline(__always) func restart(_ i: Int) -> Int {
        Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: dataLimit &+ 4 &* i, as: UInt32.self)))
    }

    /// An entry's header: key delta at `delta ..< delta + unshared`, value right after it.
    struct Entry {
        var shared: Int
        var unshared: Int
        var valueLength: Int
        var delta: Int
        @inline(__always) var valueStart: Int { delta &+ unshared }
        @inline(__always) var end: Int { delta &+ unshared &+ valueLength }
    }

    /// Decodes the header of the entry at `offset`; nil when it runs past the entries.
    @inline(__always) func entry(at offset: Int) -> Entry? {
        var p = offset
        let shared, unshared, valueLength: Int
        if p &+ 3 <= dataLimit {
            let a = base.load(fromByteOffset: p, as: UInt8.self)
            let b = base.load(fromByteOffset: p &+ 1, as: UInt8.self)
            let c = base.load(fromByteOffset: p &+ 2, as: UInt8.self)
            if (a | b | c) < 0x80 {
                shared = Int(a); unshared = Int(b); valueLength = Int(c)
                p &+= 3
            } else {
                guard let s = varint(&p), let u = varint(&p), let v = varint(&p) else { return nil }
                shared = s; unshared = u; valueLength = v
            }
        } else {
            guard let s = varint(&p), let u = varint(&p), let v = varint(&p) else { return nil }
            shared = s; unshared = u; valueLength = v
        }
        guard unshared <= dataLimit &- p, valueLength <= dataLimit &- p &- unshared else { return nil }
        return Entry(shared: shared, unshared: unshared, valueLength: valueLength, delta: p)
    }

    /// A varint of at most 32 bits at `p` (advanced past it), or nil.
    private func varint(_ p: inout Int) -> Int? {
        var result = 0
        var shift = 0
        while p < dataLimit && shift <= 28 {
            let b = base.load(fromByteOffset: p, as: UInt8.self)
            p &+= 1
            result |= Int(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
        return nil
    }

    /// The key stored whole at restart point `i` (its entry shares nothing), or nil when malformed.
    @inline(__always) func restartKey(_ i: Int) -> UnsafeRawBufferPointer? {
        guard let e = entry(at: restart(i)), e.shared == 0, e.unshared >= 8 else { return nil }
        return UnsafeRawBufferPointer(start: base + e.delta, count: e.unshared)
    }

    /// The restart interval where a scan for the first key >= `target` starts: the last restart
    /// point whose key is < target, or 0. Nil when a restart entry is malformed.
    func restartInterval(for target: UnsafeRawBufferPointer) -> Int? {
        var lo = 0, hi = restartCount - 1
        while lo < hi {
            let mid = (lo &+ hi &+ 1) >> 1
            guard let k = restartKey(mid) else { return nil }
            if compareInternalKeys(k, target) < 0 { lo = mid } else { hi = mid &- 1 }
        }
        return lo
    }
}
