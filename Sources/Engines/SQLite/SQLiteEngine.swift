import CSQLite
import EngineAPI

/// The `sqlite` engine: libsqlite3 (C API) behind the `StorageEngine` contract, configured as
/// k3s/kine runs SQLite under Kubernetes. README.md beside this file gives the reasons and the
/// measurements behind each choice.
///
/// - Store: one table `kv(key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID` in `data.sqlite`
///   (a B-tree keyed by our byte keys; SQLite compares blobs with memcmp, then length, which is
///   the engine contract's order). Layout and format checks: `SQLiteStoreFormat`.
/// - Writes: WAL mode, `synchronous=FULL`. Concurrent writers share commits
///   (`GroupCommitQueue`): one transaction and one WAL fsync per group; a group holding only
///   `sync: false` batches commits with `synchronous=NORMAL` (no fsync; a crash may lose it,
///   never part of it). One writer connection, used by the group's leader only.
/// - Reads: reader connections from a pool (`ReaderPool`); `get` takes one for the call, a
///   `ReadView` holds one with an open read transaction for its life. WAL readers and the writer
///   never block each other.
/// - Threading: connections are opened with SQLITE_OPEN_NOMUTEX and never used by two threads
///   at once (see `SQLiteConnection`); SQLite's own per-connection mutexes would only add cost.
/// - Checkpoints: `WALCheckpointer` (PASSIVE past 1000 WAL frames, RESTART past 4096 so that
///   steady reads cannot make the WAL grow without bound).
/// - `reclaimSpace`: VACUUM, then a TRUNCATE checkpoint.
/// - `maxSizeBytes`: `PRAGMA max_page_count`; a batch that would grow the database file past it
///   fails with `.full` and none of it is applied (the WAL is not counted).
/// - `cacheBytes`: the writer connection's page cache; readers get a small cache each.
///   `paranoidChecks`: `PRAGMA cell_size_check`. `writeBufferBytes` does not apply.
/// - Stats: `liveBytes` = (pages - free pages) x page size; `diskBytes` = allocated size of the
///   directory's files; `bytesWrittenSinceOpen` = WAL frames SQLite's pager wrote, plus the bytes
///   the committing thread wrote in checkpoints and VACUUM (/proc/thread-self/io around those);
///   no `entryCount` (count(*) walks the table).
/// - Corruption: SQLITE_CORRUPT / SQLITE_NOTADB become `.corruption` naming the file. SQLite
///   keeps no checksums of page contents: a garbage or truncated file is refused, a flipped
///   byte inside a value is not detected.
public final class SQLiteEngine: StorageEngine, @unchecked Sendable {
    public static let engineName = "sqlite"

    public var name: String { Self.engineName }
    public var directory: String { store.directory }
    private let store: SQLiteStore

    private init(store: SQLiteStore) { self.store = store }

    deinit { store.close() }

    /// Opens (or creates, if `options.createIfMissing`) the store in `directory`.
    public static func open(directory: String, options: EngineOptions = EngineOptions()) throws -> SQLiteEngine {
        guard sqlite3_threadsafe() != 0 else {
            throw EngineError(.invalidArgument, engine: engineName, path: directory, operation: "open",
                              message: "libsqlite3 was built with SQLITE_THREADSAFE=0; the engine needs a thread-safe build")
        }
        if !PosixFiles.isDirectory(directory) {
            guard options.createIfMissing else {
                throw EngineError(.notFound, engine: engineName, path: directory, operation: "open",
                                  message: "no store here and createIfMissing is false")
            }
            do { try PosixFiles.makeDirectories(directory) } catch let e as PosixError {
                throw SQLiteErrors.posix(e, operation: "open")
            }
        }
        let databasePath = directory + "/" + SQLiteStoreFormat.databaseName
        let hasDatabase = PosixFiles.exists(databasePath)
        if !hasDatabase && !options.createIfMissing {
            throw EngineError(.notFound, engine: engineName, path: directory, operation: "open",
                              message: "no \(SQLiteStoreFormat.databaseName) here and createIfMissing is false")
        }
        try SQLiteStoreFormat.checkDirectory(directory, hasDatabase: hasDatabase)
        let lock: DirectoryLock
        do { lock = try DirectoryLock(path: directory + "/" + SQLiteStoreFormat.lockName) } catch let e as PosixError {
            throw EngineError(.io, engine: engineName, path: directory, operation: "open",
                              message: "\(e.message): the store is already open (another engine instance holds its LOCK)")
        }
        let settings = SQLiteSettings(options: options)
        let writer = try SQLiteConnection(path: databasePath, create: true)
        let pageSize: Int64
        do {
            try settings.applyWriter(writer)
            try SQLiteStoreFormat.prepareSchema(writer, createIfMissing: options.createIfMissing, directory: directory)
            pageSize = try writer.integer("PRAGMA page_size", operation: "open")
        } catch {
            writer.close()
            throw error
        }
        return SQLiteEngine(store: SQLiteStore(directory: directory, databasePath: databasePath, writer: writer,
                                               pageSize: pageSize, settings: settings, lock: lock))
    }

    public func get(_ key: [UInt8]) throws -> [UInt8]? {
        try store.withOpen("get") {
            let connection = try store.readers.checkOut()
            defer { store.readers.checkIn(connection) }
            return try SQLiteReads.get(connection, key)
        }
    }

    public func readView() throws -> any ReadView {
        try store.withOpen("readView") { try SQLiteReadView(store: store) }
    }

    public func write(_ batch: WriteBatch, sync: Bool) throws {
        try store.write(batch, sync: sync)
    }

    public func reclaimSpace() throws {
        try store.reclaimSpace()
    }

    public func stats() throws -> EngineStats {
        try store.stats()
    }

    public func close() throws {
        store.close()
    }
}
