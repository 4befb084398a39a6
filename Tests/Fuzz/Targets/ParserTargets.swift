import EngineAPI
import LMDBEngine
import LSMEngine

/// The on-disk parsers. Contract for any bytes: an error is `.corruption` naming the file it
/// read and an offset in it; what parses reads back consistently (FileVerifier's checks).
///
/// Input conventions (the first byte picks a mode, the rest is the file or its parts):
///   lsm-table     bit 0 of byte 0 set: the table's checksums are fixed up before opening, so
///                 that mutations reach the block and index parsers behind them
///   lsm-block     the bytes are one block's contents (no checksum)
///   lsm-manifest, lsm-wal, lmdb-wal
///                 bit 0 set: the rest is 2-byte-length-prefixed payloads, framed here as valid
///                 records of the log's type; clear: the rest is the log file as it is
///   record-log    byte 0 is the record type expected, the rest is the log file
enum ParserTargets {
    static let all: [FuzzTarget] = [
        FuzzTarget(name: "record-log", run: recordLog),
        FuzzTarget(name: "lsm-block", run: lsmBlock),
        FuzzTarget(name: "lsm-table", run: lsmTable),
        FuzzTarget(name: "lsm-manifest", run: { try log($0, $1, type: 1, name: "MANIFEST-000001") { try FileVerifier.readManifest(path: $0) } }),
        FuzzTarget(name: "lsm-wal", run: { try log($0, $1, type: 2, name: "000001.log") { try FileVerifier.readLog(path: $0) } }),
        FuzzTarget(name: "lmdb-wal", run: { try log($0, $1, type: WriteAheadLog.batchRecord, name: "wal-0000000001.log") {
            _ = try WriteAheadLog.readSegment($0)
        } }),
    ]

    /// Errors other than a file-naming `.corruption` are findings.
    static func expectCorruption(path: String, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let e as EngineError {
            guard e.kind == .corruption, e.path == path, e.message.contains(" at offset ") else {
                throw FuzzFinding("error without file and offset: \(e)")
            }
        } catch let e as FileVerifier.Disagreement {
            throw FuzzFinding("wrong data: \(e)")
        }
    }

    static func recordLog(_ input: [UInt8], _ scratch: String) throws {
        guard let type = input.first, type != 0 else { return }
        let data = Array(input.dropFirst())
        struct Bad: Error { let offset: Int }
        var next = 0
        do {
            let end = try data.withUnsafeBytes { buf in
                try RecordLog.scan(buf, type: type, corruption: { offset, _ in Bad(offset: offset) }) { payload, offset in
                    guard offset == next, payload.count <= buf.count - offset - RecordLog.headerSize else {
                        throw FuzzFinding("record at \(offset) where the previous ended at \(next)")
                    }
                    next = offset + RecordLog.headerSize + payload.count
                }
            }
            guard end == next, end <= data.count else { throw FuzzFinding("scan ended at \(end), records at \(next)") }
        } catch let b as Bad {
            guard b.offset == next, b.offset < data.count else {
                throw FuzzFinding("corruption at \(b.offset), records ended at \(next)")
            }
        }
    }

    static func lsmBlock(_ input: [UInt8], _ scratch: String) throws {
        do {
            _ = try input.withUnsafeBytes { try FileVerifier.readBlock($0) }
        } catch let e as FileVerifier.Disagreement {
            throw FuzzFinding("wrong data: \(e)")
        }
    }

    static func lsmTable(_ input: [UInt8], _ scratch: String) throws {
        guard let mode = input.first else { return }
        var file = Array(input.dropFirst())
        if mode & 1 == 1 { FileVerifier.fixTableChecksums(&file) }
        let path = scratch + "/000001.sst"
        writeScratchFile(path, file)
        try expectCorruption(path: path) { try FileVerifier.readTable(path: path) }
    }

    static func log(_ input: [UInt8], _ scratch: String, type: UInt8, name: String,
                    read: (String) throws -> Void) throws {
        guard let mode = input.first else { return }
        var file: [UInt8] = []
        if mode & 1 == 1 {
            for payload in lengthPrefixedChunks(input.dropFirst()) {
                payload.withUnsafeBytes { RecordLog.appendRecord($0, type: type, to: &file) }
            }
        } else {
            file = Array(input.dropFirst())
        }
        let path = scratch + "/" + name
        writeScratchFile(path, file)
        try expectCorruption(path: path) { try read(path) }
    }
}
