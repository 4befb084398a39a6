import CRocksDB
import EngineAPI

/// An open rocksdb_t with its settings, shared by the engine and its views.
///
/// `lifetime` shared: any use of the database (reads, writes, iterators, snapshots,
/// compactions); exclusive: close, which first releases every live snapshot, so a view that
/// outlives close finds the database gone and throws `.closed` instead of touching freed memory.
final class RocksDBDatabase: @unchecked Sendable {
    let path: String
    let settings: RocksDBSettings
    private let lifetime = EngineRWLock()
    /// nil once closed; read under `lifetime` shared, cleared under exclusive.
    private var db: OpaquePointer?
    private let snapshots = EngineLocked<[ObjectIdentifier: RocksDBSnapshot]>([:])
    /// Whether a `sync: false` write happened since open (close then syncs the WAL once).
    let unsyncedWrites = EngineLocked(false)

    init(path: String, options engineOptions: EngineOptions) throws {
        self.path = path
        settings = try RocksDBSettings(engineOptions, path: path)
        var err: UnsafeMutablePointer<CChar>?
        let opened = rocksdb_open(settings.options, path, &err)
        if let error = RocksDBErrors.take(err, path: path, operation: "open") {
            if let opened { rocksdb_close(opened) }
            settings.destroy()
            throw error
        }
        guard let opened else {
            settings.destroy()
            throw RocksDBErrors.allocationFailed("rocksdb_open", path: path, operation: "open")
        }
        db = opened
    }

    deinit {
        close()
    }

    /// Runs `body` with the open database under the shared lifetime lock.
    func withDatabase<T>(operation: String, _ body: (OpaquePointer) throws -> T) throws -> T {
        try lifetime.withShared {
            guard let db else { throw RocksDBErrors.closed(path: path, operation: operation) }
            return try body(db)
        }
    }

    /// Releases every snapshot, makes `sync: false` writes durable, and closes the database
    /// (waiting for running flushes and compactions). Idempotent; reports nothing (best effort,
    /// as a destructor would).
    func close() {
        lifetime.withExclusive {
            guard let db else { return }
            let live = snapshots.withLock { s -> [RocksDBSnapshot] in
                defer { s.removeAll() }
                return Array(s.values)
            }
            for snapshot in live { snapshot.release(db) }
            if unsyncedWrites.withLock({ $0 }) {
                // RocksDB closes its WAL without syncing it: sync it here, so that a clean
                // close leaves nothing that a power loss could take.
                var err: UnsafeMutablePointer<CChar>?
                rocksdb_flush_wal(db, 1, &err)
                if let err { rocksdb_free(err) }
            }
            rocksdb_close(db)
            self.db = nil
            settings.destroy()
        }
    }

    // MARK: Snapshots for views

    func createSnapshot() throws -> RocksDBSnapshot {
        try withDatabase(operation: "readView") { db in
            let snapshot = try RocksDBSnapshot(db: db, settings: settings, path: path)
            snapshots.withLock { $0[ObjectIdentifier(snapshot)] = snapshot }
            return snapshot
        }
    }

    /// Ends a view's snapshot (view deinit); nothing to do when close already did it.
    func releaseSnapshot(_ snapshot: RocksDBSnapshot) {
        lifetime.withShared {
            guard let db else { return }
            snapshots.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(snapshot)) }
            snapshot.release(db)
        }
    }

    /// Runs `body` with the database and a live snapshot, under the shared lifetime lock.
    func withSnapshot<T>(_ snapshot: RocksDBSnapshot, operation: String,
                         _ body: (OpaquePointer, RocksDBSnapshot.Live) throws -> T) throws -> T {
        try withDatabase(operation: operation) { db in
            guard let live = snapshot.live else { throw RocksDBErrors.closed(path: path, operation: operation) }
            return try body(db, live)
        }
    }

    // MARK: Properties

    /// A DB property ("rocksdb.estimate-live-data-size", …) as text; nil if RocksDB has none.
    func property(_ name: String) throws -> String? {
        try withDatabase(operation: "stats") { db in
            guard let value = rocksdb_property_value(db, name) else { return nil }
            defer { rocksdb_free(value) }
            return String(cString: value)
        }
    }

    /// A numeric DB property; nil if RocksDB has none or it is not a number.
    func numericProperty(_ name: String) throws -> UInt64? {
        try property(name).flatMap { UInt64($0.trimmingCharacters(in: " \n")) }
    }
}

/// A rocksdb snapshot and the read options that read through it. Released by its view's
/// deinit (shared lifetime lock) or by close (exclusive): never both at once.
final class RocksDBSnapshot: @unchecked Sendable {
    struct Live {
        let snapshot: OpaquePointer
        /// Read options bound to `snapshot`, for point reads.
        let readOptions: OpaquePointer
    }
    private(set) var live: Live?

    init(db: OpaquePointer, settings: RocksDBSettings, path: String) throws {
        guard let snapshot = rocksdb_create_snapshot(db) else {
            throw RocksDBErrors.allocationFailed("rocksdb_create_snapshot", path: path, operation: "readView")
        }
        do {
            live = Live(snapshot: snapshot,
                        readOptions: try settings.makeReadOptions(snapshot: snapshot, path: path, operation: "readView"))
        } catch {
            rocksdb_release_snapshot(db, snapshot)
            throw error
        }
    }

    func release(_ db: OpaquePointer) {
        guard let live else { return }
        rocksdb_readoptions_destroy(live.readOptions)
        rocksdb_release_snapshot(db, live.snapshot)
        self.live = nil
    }
}

private extension String {
    func trimmingCharacters(in set: String) -> String {
        let chars = Set(set)
        var s = Substring(self)
        while let f = s.first, chars.contains(f) { s = s.dropFirst() }
        while let l = s.last, chars.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
