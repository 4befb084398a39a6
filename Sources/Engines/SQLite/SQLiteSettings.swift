import CSQLite
import EngineAPI

/// How the engine configures SQLite (the reasons and measurements are in README.md beside this
/// file). Connection settings are applied to every connection at open; the page size only when
/// the database file is created (VACUUM keeps it).
struct SQLiteSettings: Sendable {
    /// Bytes per B-tree page of a new database.
    var pageSize = 4096
    /// WAL frames (pages) after which a commit runs a PASSIVE checkpoint on its way out
    /// (`WALCheckpointer`; SQLite's own wal_autocheckpoint default).
    var walAutocheckpointPages = 1000
    /// WAL frames after which the leader waits for readers to leave the WAL (RESTART checkpoint).
    var walRestartPages = 4096
    /// Longest wait of that RESTART checkpoint for readers (writers wait meanwhile).
    var walRestartWaitMilliseconds: Int32 = 100
    /// Size the WAL file is truncated back to after a checkpoint resets it.
    var journalSizeLimitBytes = 64 << 20
    /// Page cache of the writer connection (SQLite's cache_size); from `EngineOptions.cacheBytes`.
    var writerCacheBytes = 64 << 20
    /// Page cache of each reader connection. A WAL reader's cache is dropped whenever another
    /// connection committed since its last read, so under writes it rarely survives; the OS
    /// page cache does the caching.
    var readerCacheBytes = 2 << 20
    /// Idle reader connections kept open for reuse.
    var maxIdleReaders = 8
    /// How long a connection waits for a lock SQLite holds only briefly (WAL index recovery
    /// after a crash, a checkpoint resetting the log) before failing with SQLITE_BUSY.
    var busyTimeoutMilliseconds: Int32 = 5000
    /// Defensive checks of every cell read from a page (`PRAGMA cell_size_check`).
    var cellSizeCheck = true
    /// Upper bound on the database file (max_page_count x page size), nil: unbounded.
    var maxSizeBytes: UInt64?

    init(options: EngineOptions) {
        writerCacheBytes = max(options.cacheBytes, 1 << 20)
        cellSizeCheck = options.paranoidChecks
        maxSizeBytes = options.maxSizeBytes
    }

    /// Settings every connection gets.
    func applyCommon(_ connection: SQLiteConnection, cacheBytes: Int) throws {
        sqlite3_busy_timeout(connection.handle, busyTimeoutMilliseconds)
        try connection.execute("PRAGMA cache_size = -\(max(cacheBytes / 1024, 64))", operation: "open")
        try connection.execute("PRAGMA cell_size_check = \(cellSizeCheck ? "ON" : "OFF")", operation: "open")
        try connection.execute("PRAGMA trusted_schema = OFF", operation: "open")
    }

    /// The writer connection: WAL mode (persistent in the file), synchronous FULL (a commit
    /// returns after the WAL is fsynced), size limit. Checkpoints: `WALCheckpointer`.
    func applyWriter(_ connection: SQLiteConnection) throws {
        try connection.execute("PRAGMA page_size = \(pageSize)", operation: "open")  // new files only
        guard let mode = try connection.text("PRAGMA journal_mode = WAL", operation: "open"), mode.lowercased() == "wal" else {
            throw EngineError(.io, engine: SQLiteEngine.engineName, path: connection.path, operation: "open",
                              message: "SQLite refused WAL mode for this database")
        }
        try applyCommon(connection, cacheBytes: writerCacheBytes)
        try connection.execute("PRAGMA synchronous = FULL", operation: "open")
        try connection.execute("PRAGMA journal_size_limit = \(journalSizeLimitBytes)", operation: "open")
        if let maxSizeBytes {
            let actualPageSize = try connection.integer("PRAGMA page_size", operation: "open")
            let pages = max(UInt64(1), maxSizeBytes / UInt64(max(actualPageSize, 512)))
            try connection.execute("PRAGMA max_page_count = \(min(pages, UInt64(UInt32.max - 1)))", operation: "open")
        }
    }

    /// A reader connection: never writes (query_only), small cache.
    func applyReader(_ connection: SQLiteConnection) throws {
        try applyCommon(connection, cacheBytes: readerCacheBytes)
        try connection.execute("PRAGMA query_only = ON", operation: "open")
    }
}
