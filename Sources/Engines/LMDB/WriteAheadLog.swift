#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EngineAPI

// The lmdb engine's write-ahead log: numbered segment files in the generation's directory,
// `gen-NNNNNN/wal-NNNNNNNNNN.log`, each a record log (EngineAPI's `RecordLog`) of write batches:
//
//     record type 1: one write batch
//         count: varint
//         count operations: varint (key length << 1 | 1 put / 0 delete), key bytes,
//                           value (varint length + bytes, puts only)
//
// A segment holds the batches of one generation of pending writes (see `PendingWrites`); it is
// deleted once those batches are committed to LMDB with a synced commit, oldest first, each
// deletion made durable (directory fsync) before the next, so that a segment on disk is never
// older than one already deleted. Recovery applies every remaining segment in order; applying
// a segment that LMDB already holds is harmless because every later segment is applied after it.
package enum WriteAheadLog {
    package static let batchRecord: UInt8 = 1
    static let segmentPrefix = "wal-"
    static let segmentSuffix = ".log"
    /// Space reserved ahead of appends, so that most syncs do not extend the file.
    static let preallocationStep = 4 << 20

    static func segmentPath(_ directory: String, _ number: UInt64) -> String {
        let digits = String(number)
        return directory + "/" + segmentPrefix + String(repeating: "0", count: max(0, 10 - digits.count)) + digits + segmentSuffix
    }

    /// The segments in `directory`, oldest first.
    static func segments(in directory: String) throws -> [(number: UInt64, path: String)] {
        var out: [(number: UInt64, path: String)] = []
        for name in try PosixFiles.directoryNames(directory)
        where name.hasPrefix(segmentPrefix) && name.hasSuffix(segmentSuffix) {
            let digits = name.dropFirst(segmentPrefix.count).dropLast(segmentSuffix.count)
            guard let number = UInt64(digits) else { continue }
            out.append((number, directory + "/" + name))
        }
        return out.sorted { $0.number < $1.number }
    }

    /// Appends the framed record of `batch` to `out`.
    package static func appendRecord(_ batch: WriteBatch, to out: inout [UInt8]) {
        let start = RecordLog.beginRecord(type: batchRecord, in: &out)
        out.appendVarint(UInt64(batch.count))
        for op in batch.operations {
            switch op {
            case .put(let key, let value):
                out.appendVarint(UInt64(key.count) << 1 | 1)
                out.append(contentsOf: key)
                out.appendLengthPrefixed(value)
            case .delete(let key):
                out.appendVarint(UInt64(key.count) << 1)
                out.append(contentsOf: key)
            }
        }
        RecordLog.endRecord(startingAt: start, in: &out)
    }

    /// Every batch of the segment at `path`, in order. A torn tail ends the segment; damage in
    /// the middle, a record of another type or a malformed batch throws `.corruption` naming
    /// the file and offset.
    package static func readSegment(_ path: String) throws -> [WriteBatch] {
        let data = try PosixFiles.readFile(path)
        var batches: [WriteBatch] = []
        let corruption = { (offset: Int, message: String) -> EngineError in
            EngineError(.corruption, engine: LMDBEngine.engineName, path: path, operation: "recover write-ahead log",
                        message: "\(message) at offset \(offset)")
        }
        _ = try data.withUnsafeBytes { buffer in
            try RecordLog.scan(buffer, type: batchRecord, corruption: corruption) { payload, offset in
                guard let batch = decode(payload) else {
                    throw corruption(offset, "malformed write batch in a valid record")
                }
                batches.append(batch)
            }
        }
        return batches
    }

    package static func decode(_ payload: UnsafeRawBufferPointer) -> WriteBatch? {
        var reader = ByteReader(payload)
        guard let count = reader.varint(), count <= UInt64(payload.count) else { return nil }
        var batch = WriteBatch()
        for _ in 0..<count {
            guard let head = reader.varint(), head >> 1 <= UInt64(payload.count),
                  let key = reader.bytes(Int(head >> 1)) else { return nil }
            if head & 1 == 1 {
                guard let value = reader.lengthPrefixed() else { return nil }
                batch.put(Array(key), Array(value))
            } else {
                batch.delete(Array(key))
            }
        }
        return reader.isAtEnd ? batch : nil
    }
}
