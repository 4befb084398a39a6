import EngineAPI

// The memtable: an ordered in-memory table of internal keys (a skiplist).
//
// Entries live in an arena of raw chunks that never move, so pointers to keys and values stay
// valid as long as the memtable is alive. The skiplist links (arrays of node indices) are
// guarded by a mutex: one writer (the engine's write leader) inserts, any number of readers
// look up and iterate, each step taking the mutex briefly. Entries are never removed; readers
// filter by sequence number, so a view sees exactly the writes published before it.

/// Arena of stable raw memory chunks, released with the memtable.
final class Arena {
    private var chunks: [UnsafeMutableRawPointer] = []
    private var current: UnsafeMutableRawPointer? = nil
    private var remaining = 0
    private let chunkSize = 256 << 10
    private(set) var allocatedBytes = 0

    func allocate(_ n: Int) -> UnsafeMutableRawPointer {
        if n > chunkSize / 4 {
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1), alignment: 8)
            chunks.append(p)
            allocatedBytes += n
            return p
        }
        if n > remaining {
            let p = UnsafeMutableRawPointer.allocate(byteCount: chunkSize, alignment: 8)
            chunks.append(p)
            current = p
            remaining = chunkSize
            allocatedBytes += chunkSize
        }
        let p = current!
        current = p + n
        remaining -= n
        return p
    }

    deinit {
        for c in chunks { c.deallocate() }
    }
}

struct MemNode {
    /// Internal key followed by the value.
    var entry: UnsafeRawPointer?
    var keyLength: Int32
    var valueLength: Int32
    /// Index of this node's first link in `links`.
    var linkStart: Int32
    var height: Int32

    var key: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: entry, count: Int(keyLength)) }
    var value: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: entry.map { $0 + Int(keyLength) }, count: Int(valueLength))
    }
}

final class Memtable: @unchecked Sendable {
    static let maxHeight = 12
    private let lock = Lock()
    private let arena = Arena()
    private var nodes: [MemNode]
    private var links: [Int32]
    private var height = 1
    private var random: UInt64 = 0x2545_F491_4F6C_DD1D
    private var _bytes = 0
    /// Smallest and largest user keys held, to skip searches for keys outside them.
    private var smallestUser: [UInt8] = []
    private var largestUser: [UInt8] = []
    private var _count = 0
    /// The WAL file whose records this memtable holds (recovery replays from it).
    let logNumber: UInt64

    init(logNumber: UInt64) {
        self.logNumber = logNumber
        nodes = [MemNode(entry: nil, keyLength: 0, valueLength: 0, linkStart: 0, height: Int32(Memtable.maxHeight))]
        links = [Int32](repeating: -1, count: Memtable.maxHeight)
        nodes.reserveCapacity(1024)
        links.reserveCapacity(4096)
    }

    /// Approximate memory used by entries.
    var approximateBytes: Int { lock.withLock { _bytes } }
    var count: Int { lock.withLock { _count } }
    var isEmpty: Bool { count == 0 }
    /// The smallest and largest user keys held (nil when empty).
    var userKeyRange: (smallest: [UInt8], largest: [UInt8])? {
        lock.withLock { _count == 0 ? nil : (smallestUser, largestUser) }
    }

    private func randomHeight() -> Int {
        var h = 1
        while h < Memtable.maxHeight {
            random ^= random << 13; random ^= random >> 7; random ^= random << 17
            if random & 3 != 0 { break }
            h += 1
        }
        return h
    }

    @inline(__always) private func link(_ node: Int, _ level: Int) -> Int {
        Int(links[Int(nodes[node].linkStart) + level])
    }

    /// The first node >= key at each level's predecessor; returns the node at level 0 (or -1).
    private func findGreaterOrEqual(_ key: UnsafeRawBufferPointer, prev: UnsafeMutablePointer<Int>?) -> Int {
        var x = 0
        var level = height - 1
        while true {
            let nxt = link(x, level)
            if nxt >= 0 && compareInternalKeys(nodes[nxt].key, key) < 0 {
                x = nxt
            } else {
                prev?[level] = x
                if level == 0 { return nxt }
                level -= 1
            }
        }
    }

    /// Last node < key (0 = head when none).
    private func findLessThan(_ key: UnsafeRawBufferPointer) -> Int {
        var x = 0
        var level = height - 1
        while true {
            let nxt = link(x, level)
            if nxt >= 0 && compareInternalKeys(nodes[nxt].key, key) < 0 {
                x = nxt
            } else {
                if level == 0 { return x }
                level -= 1
            }
        }
    }

    private func findLast() -> Int {
        var x = 0
        var level = height - 1
        while true {
            let nxt = link(x, level)
            if nxt >= 0 {
                x = nxt
            } else {
                if level == 0 { return x }
                level -= 1
            }
        }
    }

    /// Inserts one entry. Sequence numbers are unique, so keys never collide.
    func add(sequence: UInt64, kind: ValueKind, key: [UInt8], value: [UInt8]) {
        key.withUnsafeBytes { k in value.withUnsafeBytes { v in add(sequence: sequence, kind: kind, key: k, value: v) } }
    }

    func add(sequence: UInt64, kind: ValueKind, key k: UnsafeRawBufferPointer, value v: UnsafeRawBufferPointer) {
        let keyLength = k.count + 8
        let total = keyLength + v.count
        let p = arena.allocate(total)
        if k.count > 0 { p.copyMemory(from: k.baseAddress!, byteCount: k.count) }
        p.storeBytes(of: packTrailer(sequence, kind).littleEndian, toByteOffset: k.count, as: UInt64.self)
        if v.count > 0 { (p + keyLength).copyMemory(from: v.baseAddress!, byteCount: v.count) }
        let ikey = UnsafeRawBufferPointer(start: p, count: keyLength)

        lock.lock()
        defer { lock.unlock() }
        var prev = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &prev) { raw in
            let prevs = raw.baseAddress!.assumingMemoryBound(to: Int.self)
            _ = findGreaterOrEqual(ikey, prev: prevs)
            let h = randomHeight()
            if h > height {
                for l in height..<h { prevs[l] = 0 }
                height = h
            }
            let index = nodes.count
            let linkStart = links.count
            nodes.append(MemNode(entry: UnsafeRawPointer(p), keyLength: Int32(keyLength),
                                 valueLength: Int32(v.count), linkStart: Int32(linkStart), height: Int32(h)))
            for l in 0..<h {
                let pl = Int(nodes[prevs[l]].linkStart) + l
                links.append(links[pl])
                links[pl] = Int32(index)
            }
        }
        if _count == 0 || smallestUser.withUnsafeBytes({ compareBytes(k, $0) < 0 }) {
            smallestUser.removeAll(keepingCapacity: true)
            smallestUser.append(contentsOf: k)
        }
        if _count == 0 || largestUser.withUnsafeBytes({ compareBytes(k, $0) > 0 }) {
            largestUser.removeAll(keepingCapacity: true)
            largestUser.append(contentsOf: k)
        }
        _bytes += total + 48
        _count += 1
    }


    /// The newest version of `key` with sequence <= `sequence`.
    func get(_ key: [UInt8], sequence: UInt64) -> LookupResult {
        makeInternalKey(key, sequence, .value).withUnsafeBytes { get(internalKey: $0) }
    }

    /// The newest version of the user key of `t` with sequence <= t's sequence.
    func get(internalKey t: UnsafeRawBufferPointer) -> LookupResult {
        lock.lock()
        defer { lock.unlock() }
        guard _count > 0 else { return .notFound }
        let u = userKey(t)
        let outside = smallestUser.withUnsafeBytes { compareBytes(u, $0) < 0 }
            || largestUser.withUnsafeBytes { compareBytes(u, $0) > 0 }
        if outside { return .notFound }
        let n = findGreaterOrEqual(t, prev: nil)
        guard n >= 0 else { return .notFound }
        let node = nodes[n]
        let k = node.key
        guard compareBytes(userKey(k), userKey(t)) == 0 else { return .notFound }
        if ValueKind(rawValue: UInt8(trailer(k) & 0xFF)) == .deletion { return .deleted }
        return .found(Array(node.value))
    }

    // Iterator support: positions are node indices (-1 = invalid).
    fileprivate func first() -> (Int, MemNode) { lock.withLock { position(link(0, 0)) } }
    fileprivate func last() -> (Int, MemNode) { lock.withLock { let x = findLast(); return position(x == 0 ? -1 : x) } }
    fileprivate func seek(_ key: UnsafeRawBufferPointer) -> (Int, MemNode) {
        lock.withLock { position(findGreaterOrEqual(key, prev: nil)) }
    }
    fileprivate func seekBefore(_ key: UnsafeRawBufferPointer) -> (Int, MemNode) {
        lock.withLock { let x = findLessThan(key); return position(x == 0 ? -1 : x) }
    }
    fileprivate func next(_ n: Int) -> (Int, MemNode) { lock.withLock { position(link(n, 0)) } }
    fileprivate func prev(_ node: MemNode) -> (Int, MemNode) {
        lock.withLock { let x = findLessThan(node.key); return position(x == 0 ? -1 : x) }
    }
    @inline(__always) private func position(_ n: Int) -> (Int, MemNode) {
        n >= 0 ? (n, nodes[n]) : (-1, nodes[0])
    }

    func makeIterator() -> MemtableIterator { MemtableIterator(self) }
}

final class MemtableIterator: InternalIterator {
    private let table: Memtable
    private var index = -1
    private var node: MemNode

    init(_ table: Memtable) {
        self.table = table
        node = MemNode(entry: nil, keyLength: 0, valueLength: 0, linkStart: 0, height: 0)
    }

    var isValid: Bool { index >= 0 }
    var key: UnsafeRawBufferPointer { node.key }
    var value: UnsafeRawBufferPointer { node.value }

    func seekToFirst() { (index, node) = table.first() }
    func seekToLast() { (index, node) = table.last() }
    func seek(_ target: UnsafeRawBufferPointer) { (index, node) = table.seek(target) }
    func seekBefore(_ target: UnsafeRawBufferPointer) { (index, node) = table.seekBefore(target) }
    func next() { (index, node) = table.next(index) }
    func prev() { (index, node) = table.prev(node) }
}
