import EngineAPI

// A WAL record's payload: one write batch.
//
//     sequence: UInt64 LE   sequence number of the first operation
//     count:    UInt32 LE
//     count operations:  kind u8 (1 put, 0 delete), key (varint length + bytes),
//                        value (varint length + bytes, puts only)
//
// Operation i gets sequence `sequence + i`.

enum WriteBatchCoding {
    /// Appends a framed WAL record for `batch` to `out`.
    static func appendRecord(_ batch: WriteBatch, sequence: UInt64, to out: inout [UInt8]) {
        let start = out.count
        out.appendFixed32(0) // crc
        out.appendFixed32(0) // length
        out.append(LogFormat.fullRecord)
        out.appendFixed64(sequence)
        out.appendFixed32(UInt32(batch.count))
        for op in batch.operations {
            switch op {
            case .put(let key, let value):
                out.append(ValueKind.value.rawValue)
                out.appendLengthPrefixed(key)
                out.appendLengthPrefixed(value)
            case .delete(let key):
                out.append(ValueKind.deletion.rawValue)
                out.appendLengthPrefixed(key)
            }
        }
        let length = out.count - start - LogFormat.headerSize
        out.overwriteFixed32(at: start + 4, UInt32(length))
        let crc = out.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(start + 4)...])) }
        out.overwriteFixed32(at: start, crc)
    }

    /// Decodes a payload, calling `apply(sequence, kind, key, value)` per operation.
    /// Returns the last sequence used.
    static func decode(_ payload: UnsafeRawBufferPointer, path: String, offset: Int,
                       _ apply: (UInt64, ValueKind, UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) throws -> UInt64 {
        var r = ByteReader(payload)
        let bad = FileSystem.corruption(path, "recover log", offset: offset, "malformed write batch in a valid record")
        guard let seq = r.fixed64(), let count = r.fixed32() else { throw bad }
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        for i in 0..<UInt64(count) {
            guard let kindByte = r.byte(), let kind = ValueKind(rawValue: kindByte),
                  let key = r.lengthPrefixed() else { throw bad }
            if kind == .value {
                guard let value = r.lengthPrefixed() else { throw bad }
                apply(seq + i, kind, key, value)
            } else {
                apply(seq + i, kind, key, empty)
            }
        }
        guard r.isAtEnd else { throw bad }
        return count == 0 ? seq : seq + UInt64(count) - 1
    }
}
