import EngineAPI

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum etcd's HashKV uses.
/// A running state over EngineAPI's slicing-by-16 `CRC32C` (the engines' block and record
/// checksum): HashKV and `etcdctl snapshot status`-style hashes scan the whole store, and the
/// former bytewise table here was 13% of a 300k-key restore's CPU.
struct CRC32C {
    /// The finished CRC of the bytes so far (0 for none), as EngineAPI's `update` extends it.
    private var crc: UInt32 = 0

    init() {}

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        crc = EngineAPI.CRC32C.update(crc, bytes)
    }

    mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    mutating func update(bigEndian v: UInt64) {
        var be = v.bigEndian
        withUnsafeBytes(of: &be) { update($0) }
    }

    var value: UInt32 { crc }
}
