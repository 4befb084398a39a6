/// bbolt's on-disk format (version 2), as etcd's backend writes it on little-endian machines.
///
/// The file is an array of pages of `pageSize` bytes. Every page starts with a 16-byte header:
///
///     offset  size  field
///     0       8     page id (its index in the file)
///     8       2     flags: 0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist
///     10      2     element count
///     12      4     overflow: how many further pages this page spans
///
/// Pages 0 and 1 are meta pages (the one with the higher txid whose checksum holds is current):
///
///     16  magic 0xED0CDAED (UInt32)   20  version 2   24  page size   28  flags
///     32  root bucket: root page id (UInt64), sequence (UInt64)
///     48  freelist page id            56  high-water page id (pages in use)
///     64  txid                        72  FNV-1a 64 of bytes 16..<72
///
/// A leaf element is 16 bytes (flags, pos, key size, value size: UInt32 each), a branch element
/// 16 bytes (pos, key size: UInt32; child page id: UInt64); `pos` is the distance from the
/// element to its key, the value follows the key. A leaf element with flag 0x01 is a nested
/// bucket: its value is a 16-byte bucket header (root page id, sequence), followed, when the
/// root page id is 0, by the bucket's single leaf page inline.
public enum BBoltFormat {
    public static let magic: UInt32 = 0xED0C_DAED
    public static let version: UInt32 = 2
    public static let defaultPageSize = 4096

    static let pageHeaderSize = 16
    static let elementSize = 16
    static let bucketHeaderSize = 16
    static let metaChecksumOffset = 56   // within the meta struct (which starts at byte 16)

    static let branchFlag: UInt16 = 0x01
    static let leafFlag: UInt16 = 0x02
    static let metaFlag: UInt16 = 0x04
    static let freelistFlag: UInt16 = 0x10
    static let bucketLeafFlag: UInt32 = 0x01

    /// bbolt's limits: keys up to 32 KiB, values up to 2 GiB - 2.
    public static let maxKeySize = 32768
    public static let maxValueSize = (1 << 31) - 2

    /// The freelist page id bbolt writes when the freelist is not persisted.
    static let noFreelist: UInt64 = .max

    /// FNV-1a, 64 bit: bbolt's meta page checksum.
    static func fnv64a(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return h
    }
}

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func bboltAppend<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }

    @inline(__always)
    mutating func bboltStore<T: FixedWidthInteger>(_ v: T, at offset: Int) {
        Swift.withUnsafeBytes(of: v.littleEndian) { src in
            for i in 0..<src.count { self[offset + i] = src[i] }
        }
    }

    /// Little-endian integer at `offset`; the caller checked the bounds.
    @inline(__always)
    func bboltLoad<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var v: T = 0
        for i in (0..<MemoryLayout<T>.size).reversed() { v = v << 8 | T(truncatingIfNeeded: self[offset + i]) }
        return v
    }
}

extension ArraySlice where Element == UInt8 {
    /// Little-endian integer at absolute index `offset`; the caller checked the bounds.
    @inline(__always)
    func bboltLoad<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        var v: T = 0
        for i in (0..<MemoryLayout<T>.size).reversed() { v = v << 8 | T(truncatingIfNeeded: self[offset + i]) }
        return v
    }
}

/// A file that is not a valid bbolt database, or a write that would not make one. `offset` is
/// the byte offset in the file of the problem (nil when none applies).
public struct BBoltError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String
    public let offset: Int?

    public init(_ message: String, offset: Int? = nil) {
        self.message = message
        self.offset = offset
    }

    public var description: String {
        if let offset { return "offset \(offset): \(message)" }
        return message
    }
}
