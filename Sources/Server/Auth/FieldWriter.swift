/// Writes the fields of the cluster log's auth entries, big-endian, as `FieldReader` reads
/// them: u8, u64, and strings / byte strings as a u32 length + the bytes.
struct FieldWriter {
    private(set) var out: [UInt8] = []

    mutating func u8(_ v: UInt8) { out.append(v) }

    mutating func u64(_ v: UInt64) {
        withUnsafeBytes(of: v.bigEndian) { out.append(contentsOf: $0) }
    }

    mutating func bytes(_ b: [UInt8]) {
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: b.count).bigEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: b)
    }

    mutating func string(_ s: String) { bytes(Array(s.utf8)) }
}
