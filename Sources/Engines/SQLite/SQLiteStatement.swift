import CSQLite
import EngineAPI

/// One prepared statement of one connection. Not thread-safe: used only by whoever holds its
/// connection (see `SQLiteConnection`). Blobs are bound without copying (SQLITE_STATIC): the
/// caller keeps the bytes alive until `reset()`, which also clears the bindings.
final class SQLiteStatement {
    let handle: OpaquePointer
    private unowned let connection: SQLiteConnection

    init(_ connection: SQLiteConnection, _ sql: String, persistent: Bool, operation: String) throws {
        self.connection = connection
        var statement: OpaquePointer?
        let flags = persistent ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0
        let code = sqlite3_prepare_v3(connection.handle, sql, -1, flags, &statement, nil)
        guard code == SQLITE_OK, let statement else {
            if let statement { sqlite3_finalize(statement) }
            throw connection.error(code, operation: operation, context: sql)
        }
        handle = statement
    }

    /// Releases the statement; idempotent through `SQLiteConnection.close`, which calls it once.
    func finalize() { sqlite3_finalize(handle) }

    /// Whether the statement is between its first step and its reset (in use by a scan).
    var isBusy: Bool { sqlite3_stmt_busy(handle) != 0 }

    /// Binds `bytes` as a blob to parameter `index` (1-based). An empty buffer binds a
    /// zero-length blob, never NULL.
    func bind(_ index: Int32, _ bytes: UnsafeRawBufferPointer, operation: String) throws {
        let code: Int32
        if let base = bytes.baseAddress, bytes.count > 0 {
            code = sqlite3_bind_blob64(handle, index, base, sqlite3_uint64(bytes.count), nil)
        } else {
            code = sqlite3_bind_zeroblob(handle, index, 0)
        }
        guard code == SQLITE_OK else { throw connection.error(code, operation: operation) }
    }

    func bind(_ index: Int32, _ bytes: [UInt8], operation: String) throws {
        try bytes.withUnsafeBytes { try bind(index, $0, operation: operation) }
    }

    /// One step: true for a row, false when done; an error otherwise.
    func step(operation: String) throws -> Bool {
        let code = sqlite3_step(handle)
        if code == SQLITE_ROW { return true }
        if code == SQLITE_DONE { return false }
        throw connection.error(code, operation: operation)
    }

    /// Runs a statement that returns no rows (or whose rows are ignored), then resets it.
    func run(operation: String) throws {
        defer { reset() }
        while try step(operation: operation) {}
    }

    /// Resets the statement for its next use and drops its bindings.
    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Column `index` of the current row as bytes, valid until the next step or reset. NULL is
    /// refused as corruption: the schema declares every column NOT NULL.
    func blob(_ index: Int32, operation: String) throws -> UnsafeRawBufferPointer {
        let type = sqlite3_column_type(handle, index)
        if type == SQLITE_NULL {
            throw EngineError(.corruption, engine: SQLiteEngine.engineName, path: connection.path, operation: operation,
                              message: "a row holds NULL in a column declared NOT NULL (column \(index))")
        }
        let pointer = sqlite3_column_blob(handle, index)
        let count = Int(sqlite3_column_bytes(handle, index))
        if count == 0 { return UnsafeRawBufferPointer(start: nil, count: 0) }
        guard let pointer else {
            // NULL with a length: SQLite ran out of memory converting the value.
            throw connection.error(sqlite3_errcode(connection.handle), operation: operation)
        }
        return UnsafeRawBufferPointer(start: pointer, count: count)
    }

    func int64(_ index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }

    func text(_ index: Int32) -> String? {
        guard let pointer = sqlite3_column_text(handle, index) else { return nil }
        return String(cString: pointer)
    }
}
