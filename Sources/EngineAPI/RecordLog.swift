#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Checksummed records appended to a log file: the framing shared by the engines' logs (the LSM
// engine's write-ahead log and manifest, the LMDB engine's write-ahead log). `package` access:
// not part of EngineAPI's public surface.
//
// A log file is a sequence of records, each:
//
//     crc32c: UInt32 LE   over the 5 header bytes that follow and the payload
//     length: UInt32 LE   payload length
//     type:   UInt8       what the payload holds, and in which format; chosen by the log's
//                         owner, never 0 (preallocated zeros are not records)
//     payload: length bytes
//
// Reading stops at the first record that is incomplete or fails its checksum. If no valid record
// follows it anywhere in the file, that is a torn tail (a crash during the last append, or the
// zeroed preallocated remainder) and reading ends there cleanly. If a valid record does follow,
// the damage is in the middle of the log: the reader refuses, naming the offset of the bad
// record. A valid record of a type the reader does not expect (a file of another format
// version) is refused the same way.
package enum RecordLog {
    package static let headerSize = 9

    /// Starts a record of `type` at the end of `out` (header placeholder); write the payload
    /// after it, then call `endRecord(startingAt:in:)` with the returned offset.
    package static func beginRecord(type: UInt8, in out: inout [UInt8]) -> Int {
        precondition(type != 0, "record type 0 is reserved")
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: 8))
        out.append(type)
        return start
    }

    /// Fills in the length and checksum of the record begun at `start` (its payload is
    /// everything after its header).
    package static func endRecord(startingAt start: Int, in out: inout [UInt8]) {
        out.overwriteFixed32(at: start + 4, UInt32(out.count - start - headerSize))
        let crc = out.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(start + 4)...])) }
        out.overwriteFixed32(at: start, crc)
    }

    /// Appends one framed record of `type` holding `payload` to `out`.
    package static func appendRecord(_ payload: UnsafeRawBufferPointer, type: UInt8, to out: inout [UInt8]) {
        let start = beginRecord(type: type, in: &out)
        out.append(contentsOf: payload)
        endRecord(startingAt: start, in: &out)
    }

    /// Whether a complete valid record (of any type but 0) starts at `offset`; returns its
    /// payload length.
    package static func validRecord(_ data: UnsafeRawBufferPointer, at offset: Int) -> Int? {
        guard offset >= 0, offset + headerSize <= data.count else { return nil }
        guard data[offset + 8] != 0 else { return nil }
        let length = Int(loadFixed32(data, offset + 4))
        guard length <= data.count - offset - headerSize else { return nil }
        let covered = UnsafeRawBufferPointer(rebasing: data[(offset + 4)..<(offset + headerSize + length)])
        return CRC32C.checksum(covered) == loadFixed32(data, offset) ? length : nil
    }

    /// Calls `visit(payload, offset)` for every record of `data`, which must all be of `type`.
    /// Returns the offset where the valid records end (the size of `data`, or where a torn tail
    /// starts). Damage in the middle or a record of another type throws
    /// `corruption(offset, message)`.
    @discardableResult
    package static func scan(_ data: UnsafeRawBufferPointer, type: UInt8,
                             corruption: (_ offset: Int, _ message: String) -> any Error,
                             _ visit: (_ payload: UnsafeRawBufferPointer, _ offset: Int) throws -> Void) throws -> Int {
        var offset = 0
        while offset < data.count {
            if let length = validRecord(data, at: offset) {
                guard data[offset + 8] == type else {
                    throw corruption(offset, "record of type \(data[offset + 8]) where this build reads type \(type) only (a file written in another format version)")
                }
                try visit(UnsafeRawBufferPointer(rebasing: data[(offset + headerSize)..<(offset + headerSize + length)]), offset)
                offset += headerSize + length
                continue
            }
            var probe = offset + 1
            while probe + headerSize <= data.count {
                if data[probe + 8] != 0, validRecord(data, at: probe) != nil {
                    throw corruption(offset, "bad log record (checksum or length mismatch) followed by a valid record at offset \(probe)")
                }
                probe += 1
            }
            return offset
        }
        return offset
    }
}

/// Appends framed records to a new log file. One user at a time (not thread-safe). Errors are
/// `PosixError`s naming the file.
package final class RecordLogWriter: @unchecked Sendable {
    package let path: String
    private let fd: Int32
    package private(set) var offset: Int = 0
    private var preallocated: Int = 0
    private let preallocateStep: Int
    package private(set) var bytesWritten: UInt64 = 0

    /// Creates (truncating) the file at `path`. `preallocate` > 0 reserves space in steps of that
    /// size so that appends do not extend the file's block map on every sync.
    package init(path: String, preallocate: Int) throws {
        self.path = path
        self.preallocateStep = preallocate
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PosixError("open", path) }
    }

    deinit { close(fd) }

    /// Set when a failed append could not be cut off: the file may end in a partial record.
    package private(set) var isBroken = false

    /// Appends already framed records (see `RecordLog.endRecord`). On failure nothing of them
    /// stays in the file (unless `isBroken` becomes true).
    package func append(_ framed: UnsafeRawBufferPointer) throws {
        guard !isBroken else { throw PosixError("pwrite", path, EIO) }
        if preallocateStep > 0 && offset + framed.count > preallocated {
            #if os(Linux)
            let want = ((offset + framed.count) / preallocateStep + 1) * preallocateStep
            if posix_fallocate(fd, off_t(preallocated), off_t(want - preallocated)) == 0 {
                preallocated = want
            } else {
                preallocated = Int.max  // unsupported: stop trying
            }
            #endif
        }
        var done = 0
        while done < framed.count {
            let n = pwrite(fd, framed.baseAddress! + done, framed.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                let failure = PosixError("pwrite", path)
                // Cut off what part of the record was written, so that the next append does not
                // follow a partial record; if even that fails, the log takes no more records.
                if ftruncate(fd, off_t(offset)) == 0 {
                    preallocated = offset
                } else {
                    isBroken = true
                }
                throw failure
            }
            done += n
        }
        offset += framed.count
        bytesWritten += UInt64(framed.count)
    }

    package func append(_ framed: [UInt8]) throws {
        try framed.withUnsafeBytes { try append($0) }
    }

    /// fdatasync: every record appended so far is on stable storage when this returns.
    package func sync() throws {
        while fdatasync(fd) != 0 {
            if errno != EINTR { throw PosixError("fdatasync", path) }
        }
    }

    /// Gives back the preallocated space past the last record, then syncs.
    package func finish() throws {
        if preallocated > offset && preallocated != Int.max {
            guard ftruncate(fd, off_t(offset)) == 0 else { throw PosixError("ftruncate", path) }
            preallocated = offset
        }
        try sync()
    }
}
