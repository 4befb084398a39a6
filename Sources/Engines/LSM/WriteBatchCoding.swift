import EngineAPI

// A WAL record's payload (record type 2): one write batch.
//
//     sequence: varint   sequence number of the first operation
//     count:    varint
//     count operations:  varint (key length << 1 | kind: 1 put, 0 delete), key bytes,
//                        value (varint length + bytes, puts only)
//
// Operation i gets sequence `sequence + i`. (Format 1, record type 1, had a fixed 8-byte
// sequence, a 4-byte count and a kind byte before each key's length.)

enum WriteBatchCoding {
    /// Appends a framed WAL record for `batch` to `out`.
    static func appendRecord(_ batch: WriteBatch, sequence: UInt64, to out: inout [UInt8]) {
        let start = RecordLog.beginRecord(type: LogFormat.batchRecord, in: &out)
        out.appendVarint(sequence)
        out.appendVarint(UInt64(batch.count))
        for op in batch.operations {
            switch op {
            case .put(let key, let value):
                out.appendVarint(UInt64(key.count) << 1 | UInt64(ValueKind.value.rawValue))
                out.append(contentsOf: key)
                out.appendLengthPrefixed(value)
            case .delete(let key):
                out.appendVarint(UInt64(key.count) << 1 | UInt64(ValueKind.deletion.rawValue))
                out.append(contentsOf: key)
            }
        }
        RecordLog.endRecord(startingAt: start, in: &out)
    }

    /// Decodes a payload, calling `apply(sequence, kind, key, value)` per operation.
    /// Returns the last sequence used.
    static func decode(_ payload: UnsafeRawBufferPointer, path: String, offset: Int,
                       _ apply: (UInt64, ValueKind, UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) throws -> UInt64 {
        var r = ByteReader(payload)
        let bad = FileSystem.corruption(path, "recover log", offset: offset, "malformed write batch in a valid record")
        guard let seq = r.varint(), let count = r.varint(), count <= UInt64(payload.count),
              seq <= maxSequence, maxSequence - seq >= count else { throw bad }
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        for i in 0..<count {
            guard let head = r.varint(), let kind = ValueKind(rawValue: UInt8(head & 1)),
                  head >> 1 <= UInt64(Int.max), let key = r.bytes(Int(head >> 1)) else { throw bad }
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
