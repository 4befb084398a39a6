import EngineAPI
// Table blocks (table format version 2).
//
// On disk a block is a sequence of entries
//     shared: varint       bytes of the user key shared with the reference key (below)
//     unshared: varint     bytes of the user key that follow
//     valueLength: varint
//     tag: varint          sequence number and kind (below)
//     user key delta (unshared bytes), value
// then the restart array: the offsets of restart entries, UInt16 LE each when the entries end
// before offset 65536, UInt32 LE otherwise; then a UInt32 LE: restart count, with bit 31 set
// when the offsets are 16-bit. The first entry is restart 0, at offset 0. The block is followed
// in the file by a UInt32 LE CRC-32C of the block contents (the handle's size excludes it).
//
// Restart entries let a lookup start decoding in the middle of a block, so they are coded
// against the block's first entry, which is always decodable: `shared` counts bytes shared
// with the first entry's user key, and the tag holds the sequence's difference from the first
// entry's. Other entries are coded against the entry before them. The first entry shares
// nothing and its tag holds its sequence itself:
//     first entry:  tag = sequence << 1 | kind
//     others:       tag = zigzag(sequence - reference sequence) << 1 | kind
// (kind: 0 deletion, 1 value). Keys written in order by consecutive writes (etcd's revisions)
// thus cost one tag byte instead of an 8-byte trailer, and a restart entry repeats only the
// bytes where its user key differs from the block's first one.
//
// In memory a data block stays in this format (see `Block`): lookups binary-search the restart
// points on the raw bytes and scan at most one restart interval; iteration rebuilds one
// internal key (user key + 8-byte trailer) at a time (BlockCursor.swift). Index blocks are
// decoded once per open table (IndexBlock.swift).

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

/// Sequence and kind coding of block entries (see the format above).
enum EntryTag {
    @inline(__always) static func zigzag(_ d: Int64) -> UInt64 { UInt64(bitPattern: (d << 1) ^ (d >> 63)) }
    @inline(__always) static func unzigzag(_ z: UInt64) -> Int64 { Int64(bitPattern: z >> 1) ^ -Int64(bitPattern: z & 1) }

    /// The tag of an entry with `sequence` and `kind`, coded against `reference` (nil: absolute).
    @inline(__always) static func encode(_ sequence: UInt64, _ kind: UInt64, against reference: UInt64?) -> UInt64 {
        guard let r = reference else { return sequence << 1 | kind }
        return zigzag(Int64(bitPattern: sequence &- r)) << 1 | kind
    }

    /// The trailer `(sequence << 8) | kind` of a tag coded against `reference` (nil: absolute);
    /// nil when the sequence falls outside 0 ... maxSequence.
    @inline(__always) static func trailer(_ tag: UInt64, against reference: UInt64?) -> UInt64? {
        let sequence: UInt64
        if let r = reference {
            let d = unzigzag(tag >> 1)
            let s = Int64(bitPattern: r) &+ d
            guard s >= 0 else { return nil }
            sequence = UInt64(s)
        } else {
            sequence = tag >> 1
        }
        guard sequence <= maxSequence else { return nil }
        return sequence << 8 | (tag & 1)
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
    private var lastUser: [UInt8] = []
    private var lastSequence: UInt64 = 0
    private var firstUser: [UInt8] = []
    private var firstSequence: UInt64 = 0
    private(set) var entryCount = 0

    init() { buffer.reserveCapacity(8 << 10) }

    var isEmpty: Bool { entryCount == 0 }
    var estimatedSize: Int { buffer.count + restarts.count * (buffer.count <= 0xFFFF ? 2 : 4) + 4 }

    /// Adds an internal key (user key + trailer of kind deletion or value) and its value.
    mutating func add(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) {
        let user = userKey(key)
        let t = trailer(key)
        let sequence = t >> 8, kind = t & 0xFF
        precondition(kind <= 1, "block entries hold kinds 0 (deletion) and 1 (value) only")
        var shared = 0
        var reference: UInt64? = nil
        if entryCount == 0 {
            firstUser.removeAll(keepingCapacity: true)
            firstUser.append(contentsOf: user)
            firstSequence = sequence
        } else if counter >= BlockBuilder.restartInterval
                    || buffer.count - Int(restarts[restarts.count - 1]) >= BlockBuilder.restartBytes {
            restarts.append(UInt32(buffer.count))
            counter = 0
            shared = BlockBuilder.commonPrefix(firstUser, user)
            reference = firstSequence
        } else {
            shared = BlockBuilder.commonPrefix(lastUser, user)
            reference = lastSequence
        }
        buffer.appendVarint(UInt64(shared))
        buffer.appendVarint(UInt64(user.count - shared))
        buffer.appendVarint(UInt64(value.count))
        buffer.appendVarint(EntryTag.encode(sequence, kind, against: reference))
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: user[shared...]))
        buffer.append(contentsOf: value)
        lastUser.removeAll(keepingCapacity: true)
        lastUser.append(contentsOf: user)
        lastSequence = sequence
        counter += 1
        entryCount += 1
    }

    private static func commonPrefix(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Int {
        a.withUnsafeBufferPointer { a in
            let n = min(a.count, b.count)
            var i = 0
            while i < n && a[i] == b[i] { i += 1 }
            return i
        }
    }

    /// The finished block contents; the builder is reset.
    mutating func finish() -> [UInt8] {
        let narrow = buffer.count <= 0xFFFF
        for r in restarts {
            if narrow {
                buffer.append(UInt8(truncatingIfNeeded: r))
                buffer.append(UInt8(truncatingIfNeeded: r >> 8))
            } else {
                buffer.appendFixed32(r)
            }
        }
        buffer.appendFixed32(UInt32(restarts.count) | (narrow ? Block.narrowFlag : 0))
        let out = buffer
        buffer.removeAll(keepingCapacity: true)
        restarts = [0]
        counter = 0
        lastUser.removeAll(keepingCapacity: true)
        firstUser.removeAll(keepingCapacity: true)
        entryCount = 0
        return out
    }
}

/// A block in its on-disk format, searched and iterated in place (see `BlockCursor`). It points
/// into memory owned by someone else (a table's mapping), which must outlive it. Construction
/// checks the restart array and the first entry; other entries are checked as cursors decode them.
struct Block {
    static let narrowFlag: UInt32 = 1 << 31
    let base: UnsafeRawPointer
    /// Entries occupy base ..< base + dataLimit; the restart array follows.
    let dataLimit: Int
    let restartCount: Int
    /// Restart offsets are UInt16 (else UInt32).
    let narrowRestarts: Bool
    /// The first entry's user key (base + firstKeyOffset, firstKeyLength bytes) and sequence:
    /// what restart entries are coded against.
    private(set) var firstKeyOffset = 0
    private(set) var firstKeyLength = 0
    private(set) var firstSequence: UInt64 = 0

    /// The block whose contents are `raw`; nil when its restart array or first entry is malformed.
    init?(_ raw: UnsafeRawBufferPointer) {
        let count = raw.count
        guard count >= 4, let p = raw.baseAddress else { return nil }
        let word = loadFixed32(raw, count - 4)
        let narrow = word & Block.narrowFlag != 0
        let restarts = Int(word & ~Block.narrowFlag)
        let width = narrow ? 2 : 4
        guard restarts >= 1, restarts <= (count - 4) / width else { return nil }
        let limit = count - 4 - restarts * width
        guard !narrow || limit <= 0xFFFF else { return nil }
        base = p
        dataLimit = limit
        restartCount = restarts
        narrowRestarts = narrow
        guard restart(0) == 0 else { return nil }
        var previous = 0
        for i in 1..<restarts {
            // Increasing offsets inside the entries.
            let r = restart(i)
            guard r > previous, r < limit else { return nil }
            previous = r
        }
        if limit > 0 {
            guard let e = entry(at: 0), e.shared == 0, let t = EntryTag.trailer(e.tag, against: nil) else { return nil }
            firstKeyOffset = e.delta
            firstKeyLength = e.unshared
            firstSequence = t >> 8
        }
    }

    var isEmpty: Bool { dataLimit == 0 }

    /// Offset of restart point `i`.
    @inline(__always) func restart(_ i: Int) -> Int {
        if narrowRestarts {
            return Int(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: dataLimit &+ 2 &* i, as: UInt16.self)))
        }
        return Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: dataLimit &+ 4 &* i, as: UInt32.self)))
    }

    /// An entry's header: user key delta at `delta ..< delta + unshared`, value right after it.
    struct Entry {
        var shared: Int
        var unshared: Int
        var valueLength: Int
        var tag: UInt64
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
            if (a | b) < 0x80 {
                shared = Int(a); unshared = Int(b)
                p &+= 2
            } else {
                guard let s = varint(&p), let u = varint(&p) else { return nil }
                shared = s; unshared = u
            }
            // Values of 128 ..< 16384 bytes (etcd's usual) take two bytes.
            let c = base.load(fromByteOffset: p, as: UInt8.self)
            if c < 0x80 {
                valueLength = Int(c)
                p &+= 1
            } else if p &+ 2 <= dataLimit, case let d = base.load(fromByteOffset: p &+ 1, as: UInt8.self), d < 0x80 {
                valueLength = Int(c & 0x7F) | Int(d) << 7
                p &+= 2
            } else {
                guard let v = varint(&p) else { return nil }
                valueLength = v
            }
        } else {
            guard let s = varint(&p), let u = varint(&p), let v = varint(&p) else { return nil }
            shared = s; unshared = u; valueLength = v
        }
        let tag: UInt64
        if p < dataLimit, case let t = base.load(fromByteOffset: p, as: UInt8.self), t < 0x80 {
            tag = UInt64(t)
            p &+= 1
        } else {
            guard let t = varint64(&p) else { return nil }
            tag = t
        }
        guard unshared <= dataLimit &- p, valueLength <= dataLimit &- p &- unshared else { return nil }
        return Entry(shared: shared, unshared: unshared, valueLength: valueLength, tag: tag, delta: p)
    }

    /// A varint of at most 32 bits at `p` (advanced past it), or nil.
    private func varint(_ p: inout Int) -> Int? {
        varint64(&p, maxShift: 28).map { Int($0) }
    }

    /// A varint of at most 64 bits (`maxShift` 63) at `p` (advanced past it), or nil.
    private func varint64(_ p: inout Int, maxShift: UInt64 = 63) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while p < dataLimit && shift <= maxShift {
            let b = base.load(fromByteOffset: p, as: UInt8.self)
            p &+= 1
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
        return nil
    }

    /// The restart interval where a scan for the first key >= `target` starts: the last restart
    /// point whose key is < target, or 0. Nil when a restart entry is malformed.
    func restartInterval(for target: UnsafeRawBufferPointer) -> Int? {
        if restartCount == 1 { return 0 }
        let tu = userKey(target)
        let tt = trailer(target)
        // Restart keys start with a prefix of the first key: compare that with the target once.
        // `common`: length of the common prefix; `order`: the first key's user key vs target's
        // at the first difference (+1 also when the target ends first).
        let first = UnsafeRawBufferPointer(start: base + firstKeyOffset, count: firstKeyLength)
        var common = 0
        let n = min(firstKeyLength, tu.count)
        while common &+ 8 <= n && first.loadUnaligned(fromByteOffset: common, as: UInt64.self)
                == tu.loadUnaligned(fromByteOffset: common, as: UInt64.self) { common &+= 8 }
        while common < n && first[common] == tu[common] { common &+= 1 }
        let order = common < n ? (first[common] < tu[common] ? -1 : 1) : 1
        var lo = 0, hi = restartCount - 1
        while lo < hi {
            let mid = (lo &+ hi &+ 1) >> 1
            guard let e = entry(at: restart(mid)), e.shared <= firstKeyLength else { return nil }
            var c: Int
            if e.shared > common {
                c = order
            } else {
                let rest = UnsafeRawBufferPointer(rebasing: tu[e.shared...])
                c = compareBytes(UnsafeRawBufferPointer(start: base + e.delta, count: e.unshared), rest)
                if c == 0 {
                    guard let t = EntryTag.trailer(e.tag, against: firstSequence) else { return nil }
                    c = t > tt ? -1 : (t < tt ? 1 : 0)
                }
            }
            if c < 0 { lo = mid } else { hi = mid &- 1 }
        }
        return lo
    }
}
