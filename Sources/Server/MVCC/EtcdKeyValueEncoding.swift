/// etcd's mvccpb.KeyValue in protobuf wire format (proto3: fields in number order, zero values
/// omitted), the value etcd stores per revision in bbolt. Used only to reproduce etcd's HashKV.
enum EtcdKeyValueEncoding {
    static func append(to out: inout [UInt8], key: UnsafeRawBufferPointer, createRevision: Int64,
                       modRevision: Int64, version: Int64, value: UnsafeRawBufferPointer, lease: Int64) {
        bytesField(&out, 1, key)
        varintField(&out, 2, createRevision)
        varintField(&out, 3, modRevision)
        varintField(&out, 4, version)
        bytesField(&out, 5, value)
        varintField(&out, 6, lease)
    }

    private static func bytesField(_ out: inout [UInt8], _ number: UInt64, _ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        varint(&out, number << 3 | 2)
        varint(&out, UInt64(bytes.count))
        out.append(contentsOf: bytes)
    }

    private static func varintField(_ out: inout [UInt8], _ number: UInt64, _ v: Int64) {
        guard v != 0 else { return }
        varint(&out, number << 3)
        varint(&out, UInt64(bitPattern: v))
    }

    /// The byte count of what `append` writes for these fields, without writing it.
    static func count(keyCount: Int, createRevision: Int64, modRevision: Int64, version: Int64,
                      valueCount: Int, lease: Int64) -> Int {
        func bytes(_ n: Int) -> Int { n > 0 ? 1 + varintCount(UInt64(n)) + n : 0 }
        func number(_ v: Int64) -> Int { v != 0 ? 1 + varintCount(UInt64(bitPattern: v)) : 0 }
        return bytes(keyCount) + number(createRevision) + number(modRevision) + number(version)
            + bytes(valueCount) + number(lease)
    }

    /// Bytes of `value` as a varint (1...10).
    static func varintCount(_ value: UInt64) -> Int {
        value == 0 ? 1 : (64 - value.leadingZeroBitCount + 6) / 7
    }

    static func varint(_ out: inout [UInt8], _ value: UInt64) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
}
