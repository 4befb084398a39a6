import CLevelDB
import EngineAPI

/// An open leveldb_t with the C objects it uses, shared by the engine and its views.
///
/// `lifetime` shared: any use of the database (reads, writes, iterators, snapshots);
/// exclusive: close, which first releases every live snapshot, so a view that outlives close
/// finds the database gone and throws `.closed` instead of touching freed memory.
final class LevelDBDatabase: @unchecked Sendable {
    let path: String
    private let lifetime = EngineRWLock()
    /// nil once closed; read under `lifetime` shared, cleared under exclusive.
    private var db: OpaquePointer?
    private let options: OpaquePointer
    private let cache: OpaquePointer
    private let filterPolicy: OpaquePointer
    let readOptions: OpaquePointer
    let syncWrite: OpaquePointer
    let asyncWrite: OpaquePointer
    private let snapshots = EngineLocked<[ObjectIdentifier: LevelDBSnapshot]>([:])
    /// Whether a `sync: false` write happened since open (close then syncs the log once).
    let unsyncedWrites = EngineLocked(false)
    let verifyChecksums: Bool

    init(path: String, options engineOptions: EngineOptions) throws {
        self.path = path
        verifyChecksums = engineOptions.paranoidChecks
        options = leveldb_options_create()
        cache = leveldb_cache_create_lru(max(engineOptions.cacheBytes, 1 << 20))
        filterPolicy = leveldb_filterpolicy_create_bloom(10)
        leveldb_options_set_create_if_missing(options, engineOptions.createIfMissing ? 1 : 0)
        leveldb_options_set_paranoid_checks(options, engineOptions.paranoidChecks ? 1 : 0)
        leveldb_options_set_filter_policy(options, filterPolicy)
        leveldb_options_set_cache(options, cache)
        leveldb_options_set_write_buffer_size(options, max(engineOptions.writeBufferBytes, 64 << 10))
        leveldb_options_set_compression(options, Int32(leveldb_snappy_compression))
        readOptions = leveldb_readoptions_create()
        leveldb_readoptions_set_verify_checksums(readOptions, verifyChecksums ? 1 : 0)
        syncWrite = leveldb_writeoptions_create()
        leveldb_writeoptions_set_sync(syncWrite, 1)
        asyncWrite = leveldb_writeoptions_create()
        leveldb_writeoptions_set_sync(asyncWrite, 0)

        var err: UnsafeMutablePointer<CChar>?
        let opened = leveldb_open(options, path, &err)
        if let error = LevelDBErrors.take(err, path: path, operation: "open") {
            if let opened { leveldb_close(opened) }
            destroyOptions()
            throw error
        }
        db = opened
    }

    deinit {
        close()
    }

    private func destroyOptions() {
        leveldb_options_destroy(options)
        leveldb_filterpolicy_destroy(filterPolicy)
        leveldb_cache_destroy(cache)
        leveldb_readoptions_destroy(readOptions)
        leveldb_writeoptions_destroy(syncWrite)
        leveldb_writeoptions_destroy(asyncWrite)
    }

    /// Runs `body` with the open database under the shared lifetime lock.
    func withDatabase<T>(operation: String, _ body: (OpaquePointer) throws -> T) throws -> T {
        try lifetime.withShared {
            guard let db else { throw LevelDBErrors.closed(path: path, operation: operation) }
            return try body(db)
        }
    }

    /// Releases every snapshot and closes the database (waits for background compaction).
    /// Idempotent.
    func close() {
        lifetime.withExclusive {
            guard let db else { return }
            let live = snapshots.withLock { s -> [LevelDBSnapshot] in
                defer { s.removeAll() }
                return Array(s.values)
            }
            for snapshot in live { snapshot.release(db) }
            if unsyncedWrites.withLock({ $0 }) {
                // A clean close makes `sync: false` writes durable: an empty synced batch fsyncs
                // the log behind them. Best effort (close reports no error).
                if let empty = leveldb_writebatch_create() {
                    var err: UnsafeMutablePointer<CChar>?
                    leveldb_write(db, syncWrite, empty, &err)
                    if let err { leveldb_free(err) }
                    leveldb_writebatch_destroy(empty)
                }
            }
            leveldb_close(db)
            self.db = nil
            destroyOptions()
        }
    }

    // MARK: Snapshots for views

    func createSnapshot() throws -> LevelDBSnapshot {
        try withDatabase(operation: "readView") { db in
            let snapshot = LevelDBSnapshot(db: db, verifyChecksums: verifyChecksums)
            snapshots.withLock { $0[ObjectIdentifier(snapshot)] = snapshot }
            return snapshot
        }
    }

    /// Ends a view's snapshot (view deinit); nothing to do when close already did it.
    func releaseSnapshot(_ snapshot: LevelDBSnapshot) {
        lifetime.withShared {
            guard let db else { return }
            snapshots.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(snapshot)) }
            snapshot.release(db)
        }
    }

    /// Runs `body` with the read options of a live snapshot, under the shared lifetime lock.
    func withSnapshot<T>(_ snapshot: LevelDBSnapshot, operation: String,
                         _ body: (OpaquePointer, OpaquePointer) throws -> T) throws -> T {
        try withDatabase(operation: operation) { db in
            guard let readOptions = snapshot.readOptions else {
                throw LevelDBErrors.closed(path: path, operation: operation)
            }
            return try body(db, readOptions)
        }
    }

    // MARK: Errors

    /// LevelDB's corruption messages do not name the file: add the table file(s) whose key
    /// range holds `key` (from "leveldb.sstables"), and make the error's path the file when
    /// there is one candidate.
    func locateCorruption(_ error: EngineError, key: [UInt8]?) -> EngineError {
        guard error.kind == .corruption, let key,
              let sstables = try? property("leveldb.sstables") else { return error }
        let names = LevelDBTableCheck.tables(containing: key, sstables: sstables).map { LevelDBTableCheck.fileName($0, ".ldb") }
        guard !names.isEmpty else { return error }
        var located = error
        if names.count == 1 { located.path = path + "/" + names[0] }
        located.message += " (reading a key held by table file\(names.count == 1 ? "" : "s") \(names.joined(separator: ", ")))"
        return located
    }

    // MARK: Properties

    func property(_ name: String) throws -> String? {
        try withDatabase(operation: "stats") { db in
            guard let value = leveldb_property_value(db, name) else { return nil }
            defer { leveldb_free(value) }
            return String(cString: value)
        }
    }
}

/// A leveldb snapshot and the read options that read through it. Released by its view's
/// deinit (shared lifetime lock) or by close (exclusive): never both at once.
final class LevelDBSnapshot: @unchecked Sendable {
    private var snapshot: OpaquePointer?
    private(set) var readOptions: OpaquePointer?

    init(db: OpaquePointer, verifyChecksums: Bool) {
        let snapshot = leveldb_create_snapshot(db)
        let options = leveldb_readoptions_create()
        leveldb_readoptions_set_verify_checksums(options, verifyChecksums ? 1 : 0)
        leveldb_readoptions_set_snapshot(options, snapshot)
        self.snapshot = snapshot
        self.readOptions = options
    }

    func release(_ db: OpaquePointer) {
        if let snapshot { leveldb_release_snapshot(db, snapshot) }
        if let readOptions { leveldb_readoptions_destroy(readOptions) }
        snapshot = nil
        readOptions = nil
    }
}
