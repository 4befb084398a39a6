import EngineAPI

// The LSM engine's logs (write-ahead log and manifest) are record logs (EngineAPI's
// `RecordLog`: crc32c, length, type, payload; torn tails end a log cleanly, damage in the middle
// is refused naming the file and offset). Record types used here:
//     1  manifest: a version edit (VersionEdit.swift)
//     2  write-ahead log: a write batch, format 2 (WriteBatchCoding.swift)
//        (a WAL of format 1 used type 1 for its batches)

enum LogFormat {
    static let headerSize = RecordLog.headerSize
    static let manifestRecord: UInt8 = 1
    static let batchRecord: UInt8 = 2

    /// Appends one framed record of `type` holding `payload` to `out`.
    static func appendRecord(_ payload: UnsafeRawBufferPointer, type: UInt8, to out: inout [UInt8]) {
        RecordLog.appendRecord(payload, type: type, to: &out)
    }

    /// Reads every record of the file at `path`, which must all be of `type`, calling
    /// `visit(payload, offset)` for each. Returns the offset where the valid records end (the
    /// file size, or where a torn tail starts).
    @discardableResult
    static func read(path: String, type: UInt8, operation: String,
                     _ visit: (UnsafeRawBufferPointer, Int) throws -> Void) throws -> Int {
        let data = try FileSystem.readAll(path)
        return try data.withUnsafeBytes { buf in
            try RecordLog.scan(buf, type: type, corruption: { offset, message in
                FileSystem.corruption(path, operation, offset: offset, message)
            }, visit)
        }
    }
}

/// Appends records to a log file (a `RecordLogWriter` whose errors are the engine's). Not
/// thread-safe: the engine's write leader (or the background thread, for the manifest) is its
/// only user.
final class LogWriter: @unchecked Sendable {
    let number: UInt64
    private let writer: RecordLogWriter

    var path: String { writer.path }
    var offset: Int { writer.offset }
    var bytesWritten: UInt64 { writer.bytesWritten }

    /// Creates (truncating) the log file. `preallocate` > 0 reserves space in steps of that
    /// size so appends do not extend the file's block map on every sync.
    init(path: String, number: UInt64, preallocate: Int) throws {
        self.number = number
        writer = try Self.mapped { try RecordLogWriter(path: path, preallocate: preallocate) }
    }

    /// Appends already framed records (see `LogFormat.appendRecord`).
    func append(_ framed: UnsafeRawBufferPointer) throws {
        try Self.mapped { try writer.append(framed) }
    }

    func append(_ framed: [UInt8]) throws {
        try framed.withUnsafeBytes { try append($0) }
    }

    func sync() throws {
        try Self.mapped { try writer.sync() }
    }

    /// Gives back the preallocated space past the last record and syncs (on close).
    func finish() throws {
        try Self.mapped { try writer.finish() }
    }

    private static func mapped<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as PosixError {
            throw FileSystem.ioError(e.path, e.operation, e.code)
        }
    }
}
