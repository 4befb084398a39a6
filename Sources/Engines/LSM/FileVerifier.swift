import EngineAPI

/// Reads whole LSM files the way recovery and reads do and checks that the parsers' answers agree
/// with each other. `package` access: for the fuzz targets (Tests/Fuzz) and tests, not the engine.
///
/// Contract checked on any input: damage is an `EngineError` of kind `.corruption` naming the
/// file and offset (thrown); a file that parses gives the same entries forwards, backwards and
/// by seeking, and decoded records re-encode to the same records. A disagreement is reported as
/// a `FileVerifier.Disagreement` (a parser bug: wrong data would have been served).
package enum FileVerifier {
    package struct Disagreement: Error, CustomStringConvertible {
        package let description: String
    }

    /// Opens the table at `path`, reads every entry forward and backward and seeks to each;
    /// returns the entries (internal key, value) in order.
    @discardableResult
    package static func readTable(path: String) throws -> [(key: [UInt8], value: [UInt8])] {
        let table = try Table(path: path, number: 1)
        let it = table.makeIterator()
        var forward: [(key: [UInt8], value: [UInt8])] = []
        try it.seekToFirst()
        while it.isValid {
            forward.append((Array(it.key), Array(it.value)))
            guard forward.count <= table.fileSize else { throw Disagreement(description: "more entries than bytes") }
            try it.next()
        }
        var backward: [(key: [UInt8], value: [UInt8])] = []
        try it.seekToLast()
        while it.isValid {
            backward.append((Array(it.key), Array(it.value)))
            guard backward.count <= forward.count else { throw Disagreement(description: "backward scan longer than forward") }
            try it.prev()
        }
        guard backward.count == forward.count,
              zip(forward, backward.reversed()).allSatisfy({ $0.key == $1.key && $0.value == $1.value }) else {
            throw Disagreement(description: "forward and backward scans differ (\(forward.count) vs \(backward.count) entries)")
        }
        // Seeking is only defined over sorted tables; a table whose keys are out of order (which
        // only a writer bug or CRC-valid garbage makes) is reported by the scan above as data.
        let sorted = zip(forward, forward.dropFirst()).allSatisfy { a, b in
            a.key.withUnsafeBytes { x in b.key.withUnsafeBytes { y in compareInternalKeys(x, y) < 0 } }
        }
        if sorted {
            for e in forward.prefix(64) {
                try e.key.withUnsafeBytes { try it.seek($0) }
                guard it.isValid, Array(it.key) == e.key, Array(it.value) == e.value else {
                    throw Disagreement(description: "seek to a listed key found another entry")
                }
            }
        }
        return forward
    }

    /// The entries of a block's contents, forward; nil when malformed. Checks the backward scan.
    package static func readBlock(_ raw: UnsafeRawBufferPointer) throws -> [(key: [UInt8], value: [UInt8])]? {
        _ = IndexBlock(raw)
        guard let block = Block(raw) else { return nil }
        let cursor = BlockCursor()
        cursor.reset(block)
        var forward: [(key: [UInt8], value: [UInt8])] = []
        var ok = cursor.seekToFirst()
        while ok && cursor.isValid {
            forward.append((Array(cursor.key), Array(cursor.value)))
            guard forward.count <= raw.count else { throw Disagreement(description: "more entries than bytes") }
            ok = cursor.next()
        }
        guard ok else { return nil }
        var backward: [[UInt8]] = []
        ok = cursor.seekToLast()
        while ok && cursor.isValid {
            backward.append(Array(cursor.key))
            guard backward.count <= forward.count else { throw Disagreement(description: "backward scan longer than forward") }
            ok = cursor.prev()
        }
        guard ok else { return nil }
        guard backward.count == forward.count, zip(forward, backward.reversed()).allSatisfy({ $0.key == $1 }) else {
            throw Disagreement(description: "block: forward and backward scans differ")
        }
        return forward
    }

    /// Every version edit of the manifest at `path`; each must re-encode to itself.
    @discardableResult
    package static func readManifest(path: String) throws -> Int {
        var count = 0
        try LogFormat.read(path: path, type: LogFormat.manifestRecord, operation: "read manifest") { payload, offset in
            let edit = try VersionEdit.decode(payload, path: path, offset: offset)
            let encoded = edit.encode()
            let again = try encoded.withUnsafeBytes { try VersionEdit.decode($0, path: path, offset: offset) }
            guard again.encode() == encoded else { throw Disagreement(description: "version edit does not round-trip") }
            count += 1
        }
        return count
    }

    /// Every operation of the write-ahead log at `path` (sequence, deletion?, key, value); each
    /// batch must re-encode to the same operations.
    @discardableResult
    package static func readLog(path: String) throws -> [(UInt64, Bool, [UInt8], [UInt8])] {
        var all: [(UInt64, Bool, [UInt8], [UInt8])] = []
        try LogFormat.read(path: path, type: LogFormat.batchRecord, operation: "recover log") { payload, offset in
            var ops: [(UInt64, Bool, [UInt8], [UInt8])] = []
            var batch = WriteBatch()
            let last = try WriteBatchCoding.decode(payload, path: path, offset: offset) { seq, kind, key, value in
                ops.append((seq, kind == .deletion, Array(key), Array(value)))
                if kind == .deletion { batch.delete(Array(key)) } else { batch.put(Array(key), Array(value)) }
            }
            guard ops.isEmpty || ops.last!.0 == last else { throw Disagreement(description: "last sequence mismatch") }
            var framed: [UInt8] = []
            let first = ops.first?.0 ?? last
            WriteBatchCoding.appendRecord(batch, sequence: first, to: &framed)
            var again: [(UInt64, Bool, [UInt8], [UInt8])] = []
            _ = try framed.withUnsafeBytes { f in
                try WriteBatchCoding.decode(UnsafeRawBufferPointer(rebasing: f[RecordLog.headerSize...]), path: path, offset: offset) {
                    again.append(($0, $1 == .deletion, Array($2), Array($3)))
                }
            }
            guard again.count == ops.count, zip(again, ops).allSatisfy({ $0.0 == $1.0 && $0.1 == $1.1 && $0.2 == $1.2 && $0.3 == $1.3 }) else {
                throw Disagreement(description: "write batch does not round-trip")
            }
            all += ops
        }
        return all
    }

    /// Rewrites the footer, index, filter and data block checksums of table bytes so that they
    /// match (as far as the handles are in bounds): lets a fuzzer reach the parsers behind the
    /// checksums.
    package static func fixTableChecksums(_ bytes: inout [UInt8]) {
        let size = bytes.count
        guard size >= TableFormat.footerSize else { return }
        let footer = size - TableFormat.footerSize
        bytes.withUnsafeMutableBytes { m in
            let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: m[footer..<(footer + 36)]))
            m.storeBytes(of: crc.littleEndian, toByteOffset: footer + 36, as: UInt32.self)
        }
        func fix(_ offset: UInt64, _ length: UInt64) -> Bool {
            guard offset <= UInt64(size), length <= UInt64(size), Int(offset) + Int(length) + 4 <= size else { return false }
            let o = Int(offset), n = Int(length)
            bytes.withUnsafeMutableBytes { m in
                let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: m[o..<(o + n)]))
                m.storeBytes(of: crc.littleEndian, toByteOffset: o + n, as: UInt32.self)
            }
            return true
        }
        let (io, isz, fo, fsz) = bytes.withUnsafeBytes { f in
            (loadFixed64(f, footer), loadFixed64(f, footer + 8), loadFixed64(f, footer + 16), loadFixed64(f, footer + 24))
        }
        _ = fix(fo, fsz)
        guard fix(io, isz) else { return }
        let handles = bytes.withUnsafeBytes { f in
            IndexBlock(UnsafeRawBufferPointer(rebasing: f[Int(io)..<(Int(io) + Int(isz))]))?.handles ?? []
        }
        for h in handles.prefix(256) { _ = fix(h.offset, h.size) }
        _ = fix(io, isz)
    }
}
