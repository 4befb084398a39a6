#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EngineAPI

// Internal keys (the byte coding helpers live in EngineAPI's ByteCoding.swift).
//
// An internal key is the user key followed by an 8-byte little-endian trailer
// `(sequence << 8) | kind`. Internal keys order by user key ascending (bytewise), then by
// sequence descending, so the newest version of a key comes first.

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
