#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Byte coding shared by the engines' file formats (`package` access: not part of EngineAPI's
// public surface): little-endian fixed-width integers and LEB128 varints, appended to byte
// arrays and read back with `ByteReader`, whose every read returns nil past the end.

extension Array where Element == UInt8 {
    @inline(__always) package mutating func appendFixed32(_ v: UInt32) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
    @inline(__always) package mutating func appendFixed64(_ v: UInt64) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
    @inline(__always) package mutating func appendVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        append(UInt8(v))
    }
    package mutating func appendLengthPrefixed(_ bytes: [UInt8]) {
        appendVarint(UInt64(bytes.count))
        append(contentsOf: bytes)
    }
    package mutating func overwriteFixed32(at offset: Int, _ v: UInt32) {
        var x = v.littleEndian
        for i in 0..<4 {
            self[offset + i] = UInt8(truncatingIfNeeded: x)
            x >>= 8
        }
    }
}

/// Reads fixed ints and varints from a buffer; every read returns nil past the end.
package struct ByteReader {
    package let buffer: UnsafeRawBufferPointer
    package var position: Int

    package init(_ buffer: UnsafeRawBufferPointer, position: Int = 0) {
        self.buffer = buffer
        self.position = position
    }

    package var isAtEnd: Bool { position >= buffer.count }

    package mutating func varint() -> UInt64? {
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

    package mutating func fixed32() -> UInt32? {
        guard position + 4 <= buffer.count else { return nil }
        let v = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: position, as: UInt32.self))
        position += 4
        return v
    }

    package mutating func fixed64() -> UInt64? {
        guard position + 8 <= buffer.count else { return nil }
        let v = UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: position, as: UInt64.self))
        position += 8
        return v
    }

    package mutating func byte() -> UInt8? {
        guard position < buffer.count else { return nil }
        defer { position += 1 }
        return buffer[position]
    }

    package mutating func bytes(_ n: Int) -> UnsafeRawBufferPointer? {
        // `n` may come from a file or a peer: compared without adding, so no size overflows.
        guard n >= 0, n <= buffer.count - position else { return nil }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: buffer[position..<(position + n)])
    }

    package mutating func lengthPrefixed() -> UnsafeRawBufferPointer? {
        guard let n = varint(), n <= UInt64(Int.max) else { return nil }
        return bytes(Int(n))
    }
}

@inline(__always) package func loadFixed32(_ p: UnsafeRawBufferPointer, _ offset: Int) -> UInt32 {
    UInt32(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}

@inline(__always) package func loadFixed64(_ p: UnsafeRawBufferPointer, _ offset: Int) -> UInt64 {
    UInt64(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
}
