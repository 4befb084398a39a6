/// etcd's mvccpb.KeyValue as stored in the `key` bucket, decoded in place (no copies):
/// `{bytes key = 1; int64 create_revision = 2; int64 mod_revision = 3; int64 version = 4;
/// bytes value = 5; int64 lease = 6}`. As a protobuf decoder: a field seen twice keeps the
/// last value, unknown fields of any wire type (and, as SwiftProtobuf does, a known field with
/// another wire type, and groups) are skipped, anything truncated or overlong makes the record invalid (nil). The ranges of `key`
/// and `value` index the buffer given to `init`.
struct KeyValueRecord {
    var key: Range<Int> = 0..<0
    var value: Range<Int> = 0..<0
    var createRevision: Int64 = 0
    var modRevision: Int64 = 0
    var version: Int64 = 0
    var lease: Int64 = 0

    init?(decoding b: UnsafeRawBufferPointer) {
        // Decoded into locals, stored once at the end: stores to `self`'s fields inside the loop
        // were lost for `version` and `lease` under -O with Swift 6.3.1 (KeyValueRecordTests).
        var key = 0..<0, value = 0..<0
        var createRevision: Int64 = 0, modRevision: Int64 = 0, version: Int64 = 0, lease: Int64 = 0
        var i = 0
        func varint() -> UInt64? {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while i < b.count, shift < 64 {
                let byte = b[i]
                i += 1
                v |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { return v }
                shift += 7
            }
            return nil
        }
        func bytes() -> Range<Int>? {
            guard let n = varint(), n <= UInt64(b.count - i) else { return nil }
            let r = i ..< i + Int(n)
            i += Int(n)
            return r
        }
        /// Skips one field's payload; a group (wire type 3) up to its matching end.
        func skip(wire: UInt64, field: UInt64, depth: Int) -> Bool {
            switch wire {
            case 0: return varint() != nil
            case 1: guard b.count - i >= 8 else { return false }; i += 8; return true
            case 2: return bytes() != nil
            case 5: guard b.count - i >= 4 else { return false }; i += 4; return true
            case 3:
                guard depth < 64 else { return false }
                while true {
                    guard let t = varint(), t >> 3 > 0 else { return false }
                    if t & 7 == 4 { return t >> 3 == field }
                    guard skip(wire: t & 7, field: t >> 3, depth: depth + 1) else { return false }
                }
            default: return false   // a stray group end, or wire types 6 and 7
            }
        }
        while i < b.count {
            guard let tag = varint(), tag >> 3 > 0, tag >> 3 <= UInt64(UInt32.max >> 3) else { return nil }
            if tag == 1 << 3 | 2 {
                guard let r = bytes() else { return nil }
                key = r
            } else if tag == 5 << 3 | 2 {
                guard let r = bytes() else { return nil }
                value = r
            } else if tag == 2 << 3 || tag == 3 << 3 || tag == 4 << 3 || tag == 6 << 3 {
                guard let v = varint() else { return nil }
                let n = Int64(bitPattern: v)
                if tag == 2 << 3 { createRevision = n } else if tag == 3 << 3 { modRevision = n }
                else if tag == 4 << 3 { version = n } else { lease = n }
            } else {   // unknown fields, and known ones with another wire type, as SwiftProtobuf
                guard skip(wire: tag & 7, field: tag >> 3, depth: 0) else { return nil }
            }
        }
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.version = version
        self.lease = lease
    }
}
