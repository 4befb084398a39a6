/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum etcd's HashKV uses.
/// Table-driven, one byte at a time: the hashes it serves scan the whole store anyway.
struct CRC32C {
    private static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    private var state: UInt32 = 0xFFFF_FFFF

    init() {}

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var c = state
        Self.table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        state = c
    }

    mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    mutating func update(bigEndian v: UInt64) {
        var be = v.bigEndian
        withUnsafeBytes(of: &be) { update($0) }
    }

    var value: UInt32 { ~state }
}
