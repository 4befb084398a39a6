#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Little-endian fixed-width integers, LEB128 varints, and internal keys.
//
// An internal key is the user key followed by an 8-byte little-endian trailer
// `(sequence << 8) | kind`. Internal keys order by user key ascending (bytewise), then by
// sequence descending, so the newest version of a key comes first.

extension Array where Element == UInt8 {
    @inline(__always) mutating func appendFixed32(_ v: UInt32) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
    @inline(__always) mutating func appendFixed64(_ v: UInt64) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
    @inline(__always) mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(v))
    }
    mutating func appendLengthPrefixed(_ bytes: [UInt8]) {
        appendVarint(UInt64(bytes.count))
        append(contentsOf: bytes)
    }
    mutating func overwriteFixed32(at offset: Int, _ v: UInt32) {
        var x = v.littleEndian
        for i in 0..<4 {
            self[offset + i] = UInt8(truncatingIfNeeded: x)
            x >>= 8
        }
    }
}

/// Reads fixed ints and varints from a buffer; every read returns nil past the end.
struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    var position: Int

    init(_ buffer: UnsafeRawBufferPointer, position: Int = 0) {
        self.buffer = buffer
        self.position = position
    }

    var isAtEnd: Bool { position >= buffer.count }

    mutating func varint() -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while position < buffer.count && shift <= 63 {
            let b = buffer[position]
            position += 1
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
        }
        return nil
    }

    mutating func fixed32() -> UInt32? {
        guard position + 4 <= buffer.count else { return nil }
        let v = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: position, as: UInt32.self))
        position += 4
        return v
    }

    mutating func fixed64() -> UInt64? {
        guard position + 8 <= buffer.count else { return nil }
        let v = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: position, as: UInt64.self))
        position += 8
        return v
    }

    mutating func byte() -> UInt8? {
        guard position < buffer.count else { return nil }
        defer { position += 1 }
        return buffer[position]
    }

    mutating func bytes(_ n: Int) -> UnsafeRawBufferPointer? {
        guard n >= 0, position + n <= buffer.count else { return nil }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: buffer[position..<(position + n)])
    }

    mutating func lengthPrefixed() -> UnsafeRawBufferPointer? {
        guard let n = varint(), n <= UInt64(Int.max) else { return nil }
        return bytes(Int(n))
    }
}

@inline(__always) func loadFixed32(_ p: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
    UInt32(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}

@inline(__always) func loadFixed64(_ p: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
    UInt64(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
}

/// What an internal key records.
enum ValueKind: UInt8 {
    case deletion = 0
    case value = 1
}

/// The largest sequence number (56 bits).
let maxSequence: UInt64 = (1 << 56) - 1

@inline(__always) func packTrailer(_ sequence: UInt64, _ kind: ValueKind) -> UInt64 {
    (sequence << 8) | UInt64(kind.rawValue)
}

/// Bytewise comparison (memcmp, shorter prefix first): <0, 0, >0. Compares 8 bytes at a time
/// as big-endian words: keys are short (etcd revision keys are 17 bytes), and a call to memcmp
/// cost more than the comparison itself on the read path.
@inline(__always) func compareBytes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let n = Swift.min(a.count, b.count)
    if n > 0 {
        let pa = a.baseAddress!, pb = b.baseAddress!
        var i = 0
        while i &+ 8 <= n {
            let x = UInt64(bigEndian: pa.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            let y = UInt64(bigEndian: pb.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            if x != y { return x < y ? -1 : 1 }
            i &+= 8
        }
        while i < n {
            let x = pa.load(fromByteOffset: i, as: UInt8.self), y = pb.load(fromByteOffset: i, as: UInt8.self)
            if x != y { return x < y ? -1 : 1 }
            i &+= 1
        }
    }
    return a.count - b.count
}

/// Orders internal keys: user key ascending, then trailer (sequence) descending.
@inline(__always) func compareInternalKeys(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Int {
    let ua = UnsafeRawBufferPointer(rebasing: a[0..<(a.count - 8)])
    let ub = UnsafeRawBufferPointer(rebasing: b[0..<(b.count - 8)])
    let r = compareBytes(ua, ub)
    if r != 0 { return r }
    let ta = loadFixed64(a, a.count - 8)
    let tb = loadFixed64(b, b.count - 8)
    return ta > tb ? -1 : (ta < tb ? 1 : 0)
}

@inline(__always) func userKey(_ ikey: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(rebasing: ikey[0..<(ikey.count - 8)])
}

@inline(__always) func trailer(_ ikey: UnsafeRawBufferPointer) -> UInt64 {
    loadFixed64(ikey, ikey.count - 8)
}

/// An internal key as bytes: `user` + trailer.
func makeInternalKey(_ user: [UInt8], _ sequence: UInt64, _ kind: ValueKind) -> [UInt8] {
    var k = [UInt8]()
    k.reserveCapacity(user.count + 8)
    k.append(contentsOf: user)
    k.appendFixed64(packTrailer(sequence, kind))
    return k
}

func makeInternalKey(_ user: UnsafeRawBufferPointer, _ sequence: UInt64, _ kind: ValueKind) -> [UInt8] {
    var k = [UInt8]()
    k.reserveCapacity(user.count + 8)
    k.append(contentsOf: user)
    k.appendFixed64(packTrailer(sequence, kind))
    return k
}

/// The result of a point lookup in one layer (memtable or table).
enum LookupResult {
    case found([UInt8])
    case deleted
    case notFound
}
