/// Reads the fields of auth's binary formats from untrusted bytes: the persisted `AuthState`
/// record (little-endian, AuthStateCoding.swift) and the cluster log's auth entries (big-endian:
/// AuthMutationCoding.swift, RequestIdentity.swift, SimpleTokenGrant.swift).
///
/// Every read checks the bounds first and returns nil when the field is not all there (a
/// length past the end, a length above `maxFieldBytes`, invalid UTF-8, a flag other than 0/1):
/// hostile bytes never trap.
struct FieldReader {
    enum ByteOrder { case littleEndian, bigEndian }

    /// Longest string or byte string accepted (etcd's request limit is 1.5 MiB).
    static let maxFieldBytes = 16 << 20

    private let data: [UInt8]
    private let order: ByteOrder
    /// Bytes read so far.
    private(set) var offset: Int

    init(_ data: [UInt8], _ order: ByteOrder, from offset: Int = 0) {
        self.data = data
        self.order = order
        self.offset = min(max(0, offset), data.count)
    }

    var atEnd: Bool { offset == data.count }

    mutating func u8() -> UInt8? {
        guard offset < data.count else { return nil }
        defer { offset += 1 }
        return data[offset]
    }

    /// 0 → false, 1 → true, anything else → nil.
    mutating func flag() -> Bool? {
        switch u8() {
        case 0: return false
        case 1: return true
        default: return nil
        }
    }

    mutating func u32() -> UInt32? { uint(4).map { UInt32(truncatingIfNeeded: $0) } }
    mutating func u64() -> UInt64? { uint(8) }

    private mutating func uint(_ n: Int) -> UInt64? {
        guard data.count - offset >= n else { return nil }
        var v: UInt64 = 0
        switch order {
        case .bigEndian: for i in 0 ..< n { v = v << 8 | UInt64(data[offset + i]) }
        case .littleEndian: for i in (0 ..< n).reversed() { v = v << 8 | UInt64(data[offset + i]) }
        }
        offset += n
        return v
    }

    /// A u32 length, then that many bytes.
    mutating func bytes() -> [UInt8]? {
        let start = offset
        guard let length = u32() else { return nil }
        let n = Int(length)
        guard n <= Self.maxFieldBytes, n <= data.count - offset else {
            offset = start
            return nil
        }
        defer { offset += n }
        return Array(data[offset ..< offset + n])
    }

    /// `bytes()` holding valid UTF-8.
    mutating func string() -> String? {
        guard let b = bytes() else { return nil }
        return String(validating: b, as: UTF8.self)
    }
}
