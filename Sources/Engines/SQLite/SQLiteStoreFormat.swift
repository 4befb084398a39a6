import CSQLite
import EngineAPI

/// What a sqlite engine store is on disk, and how open tells it from anything else.
///
///   LOCK               flock held while open: one engine instance per directory
///   data.sqlite        the database: `kv(key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID`,
///                      application_id 0x72757364 ("rusd"), user_version 1
///   data.sqlite-wal    the write-ahead log (while open, and after a crash)
///   data.sqlite-shm    the WAL index (shared memory; rebuilt from the WAL after a crash)
enum SQLiteStoreFormat {
    static let databaseName = "data.sqlite"
    static let lockName = "LOCK"
    /// "rusd" in the header's application_id field: `file data.sqlite` and tools show it.
    static let applicationID: Int64 = 0x7275_7364
    static let formatVersion: Int64 = 1
    static let createTable = "CREATE TABLE kv(key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID"

    /// Names SQLite (or we) may leave in the directory. The rollback journal only appears if the
    /// file was ever used outside WAL mode (a crash while creating it).
    static func isStoreFile(_ name: String) -> Bool {
        name == lockName || name == databaseName || name == databaseName + "-wal" || name == databaseName + "-shm"
            || name == databaseName + "-journal"
    }

    /// Refuses a directory that holds anything but a sqlite store's files: another engine's
    /// store must fail loudly, never gain an empty store beside it.
    static func checkDirectory(_ directory: String, hasDatabase: Bool) throws {
        let names: [String]
        do { names = try PosixFiles.directoryNames(directory) } catch let e as PosixError {
            throw SQLiteErrors.posix(e, operation: "open")
        }
        guard let foreign = names.first(where: { !isStoreFile($0) }) else { return }
        let message = hasDatabase
            ? "the directory holds a file the sqlite engine never writes (\(foreign)): not a sqlite engine store; refusing to open it"
            : "the directory holds files that are not a sqlite engine store (\(names.filter { !isStoreFile($0) }.sorted().prefix(5).joined(separator: ", "))); refusing to create a new store over them"
        throw EngineError(.invalidArgument, engine: SQLiteEngine.engineName, path: directory, operation: "open",
                          message: message)
    }

    /// Checks that the open database is a rusd store, or makes it one when it is empty (new, or
    /// its creation was cut short by a crash: no schema was ever committed). Writer connection.
    static func prepareSchema(_ connection: SQLiteConnection, createIfMissing: Bool, directory: String) throws {
        let application = try connection.integer("PRAGMA application_id", operation: "open")
        let version = try connection.integer("PRAGMA user_version", operation: "open")
        let objects = try connection.integer("SELECT count(*) FROM sqlite_master", operation: "open")
        if application == 0 && version == 0 && objects == 0 {
            guard createIfMissing else {
                throw EngineError(.notFound, engine: SQLiteEngine.engineName, path: directory, operation: "open",
                                  message: "\(databaseName) holds no store (its creation never completed) and createIfMissing is false")
            }
            try connection.execute("BEGIN IMMEDIATE; \(createTable); PRAGMA application_id = \(applicationID); PRAGMA user_version = \(formatVersion); COMMIT",
                                   operation: "open")
            return
        }
        guard application == applicationID else {
            throw EngineError(.invalidArgument, engine: SQLiteEngine.engineName, path: connection.path, operation: "open",
                              message: "a SQLite database that is not a rusd sqlite store (application_id \(application), expected \(applicationID)); refusing to open it")
        }
        guard version == formatVersion else {
            throw EngineError(.invalidArgument, engine: SQLiteEngine.engineName, path: connection.path, operation: "open",
                              message: "store format version \(version); this build reads version \(formatVersion) only")
        }
        let table = try connection.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'kv'", operation: "open")
        guard let table, normalized(table) == normalized(createTable) else {
            throw EngineError(.corruption, engine: SQLiteEngine.engineName, path: connection.path, operation: "open",
                              message: "the store's table kv is missing or has another definition: \(table ?? "none")")
        }
    }

    private static func normalized(_ sql: String) -> String {
        sql.lowercased().split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).joined(separator: " ")
    }
}
