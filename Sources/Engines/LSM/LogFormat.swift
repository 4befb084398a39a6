#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EngineAPI

// The record log shared by the write-ahead log and the manifest.
//
// A log file is a sequence of records, each:
//
//     crc32c: UInt32 LE   over the 5 header bytes that follow and the payload
//     length: UInt32 LE   payload length
//     type:   UInt8       what the payload holds, and in which format (0 is never written:
//                         preallocated zeros are not records):
//                           1  manifest: a version edit (VersionEdit.swift)
//                           2  write-ahead log: a write batch, format 2 (WriteBatchCoding.swift)
//                         (a WAL of format 1 used type 1 for its batches)
//     payload: length bytes
//
// Recovery reads records until the first one that is incomplete or fails its checksum. If no
// valid record follows it anywhere in the file, that is a torn tail (a crash during the last
// append, or the zeroed preallocated remainder) and recovery stops there cleanly. If a valid
// record does follow, the damage is in the middle of the log: recovery refuses with `.corruption`
// naming the file and the offset of the bad record. A valid record of a type the reader does
// not expect (a file of another format version) is refused the same way.

enum LogFormat {
    static let headerSize = 9
    /// Record types (see above).
    static let manifestRecord: UInt8 = 1
    static let batchRecord: UInt8 = 2

    /// Appends one framed record of `type` holding `payload` to `out`.
    static func appendRecord(_ payload: UnsafeRawBufferPointer, type: UInt8, to out: inout [UInt8]) {
        let start = out.count
        out.appendFixed32(0)
        out.appendFixed32(UInt32(payload.count))
        out.append(type)
        out.append(contentsOf: payload)
        let crc = out.withUnsafeBytes { all in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: all[(start + 4)...]))
        }
        out.overwriteFixed32(at: start, crc)
    }

    /// Whether a complete valid record (of any type but 0) starts at `offset`; returns its
    /// payload length.
    static func validRecord(_ data: UnsafeRawBufferPointer, at offset: Int) -> Int? {
        guard offset + headerSize <= data.count else { return nil }
        guard data[offset + 8] != 0 else { return nil }
        let length = Int(loadFixed32(data, offset + 4))
        guard length <= data.count - offset - headerSize else { return nil }
        let crc = loadFixed32(data, offset)
        let covered = UnsafeRawBufferPointer(rebasing: data[(offset + 4)..<(offset + headerSize + length)])
        return CRC32C.checksum(covered) == crc ? length : nil
    }

    /// Reads every record of the file at `path`, which must all be of `type`, calling
    /// `visit(payload, offset)` for each. Returns the offset where the valid records end (the
    /// file size, or where a torn tail starts).
    @discardableResult
    static func read(path: String, type: UInt8, operation: String,
                     _ visit: (UnsafeRawBufferPointer, Int) throws -> Void) throws -> Int {
        let data = try FileSystem.readAll(path)
        return try data.withUnsafeBytes { buf in
            var offset = 0
            while offset < buf.count {
                if let length = validRecord(buf, at: offset) {
                    guard buf[offset + 8] == type else {
                        throw FileSystem.corruption(path, operation, offset: offset,
                            "record of type \(buf[offset + 8]) where this build reads type \(type) only (a file written in another format version)")
                    }
                    try visit(UnsafeRawBufferPointer(rebasing: buf[(offset + headerSize)..<(offset + headerSize + length)]),
                               offset)
                    offset += headerSize + length
                    continue
                }
                // A bad or incomplete record: torn tail unless a valid record follows.
                var probe = offset + 1
                while probe + headerSize <= buf.count {
                    if buf[probe + 8] != 0, validRecord(buf, at: probe) != nil {
                        throw FileSystem.corruption(path, operation, offset: offset,
                            "bad log record (checksum or length mismatch) followed by a valid record at offset \(probe)")
                    }
                    probe += 1
                }
                return offset
            }
            return offset
        }
    }
}

/// Appends records to a log file. Not thread-safe: the engine's write leader (or the
/// background thread, for the manifest) is its only user.
final class LogWriter: @unchecked Sendable {
    let path: String
    let number: UInt64
    private let fd: Int32
    private(set) var offset: Int = 0
    private var preallocated: Int = 0
    private let preallocateStep: Int
    private(set) var bytesWritten: UInt64 = 0

    /// Creates (truncating) the log file. `preallocate` > 0 reserves space in steps of that
    /// size so appends do not extend the file's block map on every sync.
    init(path: String, number: UInt64, preallocate: Int) throws {
        self.path = path
        self.number = number
        self.preallocateStep = preallocate
        fd = try FileSystem.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC, operation: "create log")
    }

    deinit { close(fd) }

    /// Appends already framed records (see `LogFormat.appendRecord`).
    func append(_ framed: UnsafeRawBufferPointer) throws {
        if preallocateStep > 0 && offset + framed.count > preallocated {
            #if os(Linux)
            let want = ((offset + framed.count) / preallocateStep + 1) * preallocateStep
            if posix_fallocate(fd, off_t(preallocated), off_t(want - preallocated)) == 0 {
                preallocated = want
            } else {
                preallocated = Int.max // unsupported: stop trying
            }
            #endif
        }
        try FileSystem.pwrite(fd: fd, path: path, framed, offset: offset)
        offset += framed.count
        bytesWritten += UInt64(framed.count)
    }

    func append(_ framed: [UInt8]) throws {
        try framed.withUnsafeBytes { try append($0) }
    }

    func sync() throws {
        try FileSystem.dataSync(fd: fd, path: path)
    }

    /// Gives back the preallocated space past the last record and syncs (on close).
    func finish() throws {
        if preallocated > offset && preallocated != Int.max {
            if ftruncate(fd, off_t(offset)) != 0 { throw FileSystem.ioError(path, "truncate log") }
            preallocated = offset
        }
        try FileSystem.dataSync(fd: fd, path: path)
    }
}
