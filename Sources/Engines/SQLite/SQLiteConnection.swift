import CSQLite
import EngineAPI

/// The statements the engine runs, prepared once per connection and kept (`SQLITE_PREPARE_PERSISTENT`).
enum SQLiteQuery: Int, CaseIterable {
    case get, scanFrom, scanFromTo, scanFromReverse, scanFromToReverse
    case put, delete, begin, beginImmediate, commit, rollback, startRead
    case synchronousFull, synchronousNormal

    var sql: String {
        switch self {
        case .get: return "SELECT value FROM kv WHERE key = ?1"
        case .scanFrom: return "SELECT key, value FROM kv WHERE key >= ?1 ORDER BY key"
        case .scanFromTo: return "SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key"
        case .scanFromReverse: return "SELECT key, value FROM kv WHERE key >= ?1 ORDER BY key DESC"
        case .scanFromToReverse: return "SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key DESC"
        case .put: return "INSERT INTO kv(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
        case .delete: return "DELETE FROM kv WHERE key = ?1"
        case .begin: return "BEGIN"
        case .beginImmediate: return "BEGIN IMMEDIATE"
        case .commit: return "COMMIT"
        case .rollback: return "ROLLBACK"
        // Reads the table's root page: inside BEGIN it fixes the read transaction's snapshot.
        case .startRead: return "SELECT 1 FROM kv LIMIT 1"
        case .synchronousFull: return "PRAGMA synchronous = FULL"
        case .synchronousNormal: return "PRAGMA synchronous = NORMAL"
        }
    }
}

/// One SQLite connection (`sqlite3*`), opened with SQLITE_OPEN_NOMUTEX: SQLite does no locking
/// of its own on it, so exactly one thread uses it at a time. The engine guarantees that: the
/// writer connection is used only by the group-commit leader (or under the writer lock), a
/// reader connection only by whoever checked it out of the pool (one `get`, or one `ReadView`,
/// which the engine contract lets one thread use at a time), and `close` runs only with the
/// engine's lifecycle lock held exclusively.
final class SQLiteConnection: @unchecked Sendable {
    let handle: OpaquePointer
    let path: String
    private var statements: [SQLiteStatement?] = Array(repeating: nil, count: SQLiteQuery.allCases.count)
    private(set) var isClosed = false

    /// Opens `path` read-write (creating it when `create`). Extended result codes are on.
    init(path: String, create: Bool) throws {
        self.path = path
        var db: OpaquePointer?
        var flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        if create { flags |= SQLITE_OPEN_CREATE }
        let code = sqlite3_open_v2(path, &db, flags, nil)
        guard code == SQLITE_OK, let db else {
            let error = SQLiteErrors.error(code, db, path: path, operation: "open")
            if let db { sqlite3_close_v2(db) }
            throw error
        }
        handle = db
    }

    deinit { close() }

    func error(_ code: Int32, operation: String, context: String = "") -> EngineError {
        SQLiteErrors.error(code, handle, path: path, operation: operation, context: context)
    }

    /// Runs SQL text that returns no rows we need (pragmas with side effects, DDL, VACUUM).
    func execute(_ sql: String, operation: String) throws {
        let code = sqlite3_exec(handle, sql, nil, nil, nil)
        guard code == SQLITE_OK else { throw error(code, operation: operation, context: sql) }
    }

    /// The first column of the first row of `sql` as an integer (pragmas such as page_count).
    func integer(_ sql: String, operation: String) throws -> Int64 {
        let statement = try SQLiteStatement(self, sql, persistent: false, operation: operation)
        defer { statement.finalize() }
        guard try statement.step(operation: operation) else {
            throw EngineError(.io, engine: SQLiteEngine.engineName, path: path, operation: operation,
                              message: "\(sql) returned no row")
        }
        return statement.int64(0)
    }

    /// The first column of the first row of `sql` as text, or nil without a row.
    func text(_ sql: String, operation: String) throws -> String? {
        let statement = try SQLiteStatement(self, sql, persistent: false, operation: operation)
        defer { statement.finalize() }
        guard try statement.step(operation: operation) else { return nil }
        return statement.text(0)
    }

    /// Runs `body` with the cached statement for `query`, reset afterwards. If that statement is
    /// in use further up the stack (a scan whose visitor scans the same view again), a
    /// one-off statement is prepared for this call instead.
    func with<T>(_ query: SQLiteQuery, operation: String, _ body: (SQLiteStatement) throws -> T) throws -> T {
        let statement: SQLiteStatement
        var oneOff = false
        if let cached = statements[query.rawValue], !cached.isBusy {
            statement = cached
        } else if statements[query.rawValue] == nil {
            statement = try SQLiteStatement(self, query.sql, persistent: true, operation: operation)
            statements[query.rawValue] = statement
        } else {
            statement = try SQLiteStatement(self, query.sql, persistent: false, operation: operation)
            oneOff = true
        }
        defer {
            statement.reset()
            if oneOff { statement.finalize() }
        }
        return try body(statement)
    }

    /// Runs `query` (no rows expected).
    func run(_ query: SQLiteQuery, operation: String) throws {
        try with(query, operation: operation) { try $0.run(operation: operation) }
    }

    /// True while a transaction is open on this connection.
    var inTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Finalizes every cached statement and closes the connection. Idempotent. (In WAL mode the
    /// last connection of the process to close checkpoints the log and deletes it.)
    func close() {
        if isClosed { return }
        isClosed = true
        for statement in statements { statement?.finalize() }
        statements = []
        sqlite3_close_v2(handle)
    }
}
