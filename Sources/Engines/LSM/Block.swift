// Table blocks.
//
// On disk a block is a sequence of entries
//     shared: varint     bytes shared with the previous key
//     unshared: varint   bytes of key that follow
//     valueLength: varint
//     key delta, value
// then `restartCount` UInt32 LE offsets of entries stored with shared == 0 (every 16th entry),
// then restartCount: UInt32 LE. The block is followed in the file by a UInt32 LE CRC-32C of the
// block contents (the block handle's size excludes it).
//
// In memory a block is decoded once (when read into the block cache) into full keys and value
// offsets, so lookups are binary searches and iteration runs both ways without re-decoding.

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
    static let restartInterval = 16
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
        if counter < BlockBuilder.restartInterval {
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

/// A decoded, immutable block. Memory is owned by the block; pointers into it are valid while
/// the block is alive.
final class Block: @unchecked Sendable {
    private let contents: UnsafeMutableRawBufferPointer
    private let keys: UnsafeMutableRawBufferPointer
    /// keyOffsets[i] ..< keyOffsets[i+1] is key i in `keys`.
    private let keyOffsets: [Int32]
    private let valueOffsets: [Int32]
    private let valueLengths: [Int32]
    let count: Int
    /// Bytes charged to the block cache.
    let charge: Int

    /// Decodes (a copy of) block contents; nil when they are malformed.
    convenience init?(_ raw: UnsafeRawBufferPointer) {
        let contents = UnsafeMutableRawBufferPointer.allocate(byteCount: max(raw.count, 1), alignment: 8)
        if raw.count > 0 { contents.copyMemory(from: raw) }
        self.init(adopting: contents, count: raw.count)
    }

    /// Decodes the first `count` bytes of `contents`, taking ownership of the buffer (it is
    /// deallocated with the block, or at once when the contents are malformed).
    init?(adopting contents: UnsafeMutableRawBufferPointer, count rawCount: Int) {
        let raw = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(contents)[0..<rawCount])
        guard raw.count >= 4 else { contents.deallocate(); return nil }
        let restartCount = Int(loadFixed32(raw, raw.count - 4))
        guard restartCount >= 1, restartCount * 4 + 4 <= raw.count else { contents.deallocate(); return nil }
        let limit = raw.count - 4 - restartCount * 4
        var keyBytes: [UInt8] = []
        keyBytes.reserveCapacity(limit)
        // Every restart point begins at most `restartInterval` entries.
        let expected = min(restartCount * BlockBuilder.restartInterval, limit / 3 + 1)
        var keyOffsets: [Int32] = [0]
        var valueOffsets: [Int32] = []
        var valueLengths: [Int32] = []
        keyOffsets.reserveCapacity(expected + 1)
        valueOffsets.reserveCapacity(expected)
        valueLengths.reserveCapacity(expected)
        var r = ByteReader(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(contents)[0..<limit]))
        var lastStart = 0
        var ok = true
        while !r.isAtEnd {
            guard let shared = r.varint(), let unshared = r.varint(), let vlen = r.varint(),
                  shared <= UInt64(keyBytes.count - lastStart),
                  let delta = r.bytes(Int(truncatingIfNeeded: unshared)) else { ok = false; break }
            let valueStart = r.position
            guard r.bytes(Int(truncatingIfNeeded: vlen)) != nil else { ok = false; break }
            let start = keyBytes.count
            if shared > 0 {
                let n = Int(shared)
                keyBytes.append(contentsOf: repeatElement(0, count: n))
                let from = lastStart
                keyBytes.withUnsafeMutableBufferPointer { kb in
                    // The previous key ends at or before `start`: the ranges do not overlap.
                    (kb.baseAddress! + start).update(from: kb.baseAddress! + from, count: n)
                }
            }
            keyBytes.append(contentsOf: delta)
            guard keyBytes.count - start >= 8 else { ok = false; break }
            lastStart = start
            keyOffsets.append(Int32(keyBytes.count))
            valueOffsets.append(Int32(valueStart))
            valueLengths.append(Int32(vlen))
        }
        guard ok else {
            contents.deallocate()
            return nil
        }
        let keys = UnsafeMutableRawBufferPointer.allocate(byteCount: max(keyBytes.count, 1), alignment: 8)
        keyBytes.withUnsafeBytes { if $0.count > 0 { keys.copyMemory(from: $0) } }
        self.contents = contents
        self.keys = keys
        self.keyOffsets = keyOffsets
        self.valueOffsets = valueOffsets
        self.valueLengths = valueLengths
        self.count = valueOffsets.count
        self.charge = raw.count + keyBytes.count + count * 12 + 128
    }

    deinit {
        contents.deallocate()
        keys.deallocate()
    }

    @inline(__always) func key(_ i: Int) -> UnsafeRawBufferPointer {
        let s = Int(keyOffsets[i]), e = Int(keyOffsets[i + 1])
        return UnsafeRawBufferPointer(start: keys.baseAddress! + s, count: e - s)
    }

    @inline(__always) func value(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: contents.baseAddress! + Int(valueOffsets[i]), count: Int(valueLengths[i]))
    }

    /// First index whose key >= target (internal key order), or `count`.
    func lowerBound(_ target: UnsafeRawBufferPointer) -> Int {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if compareInternalKeys(key(mid), target) < 0 { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
