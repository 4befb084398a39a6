import CRocksDB
import CRocksDBLoader
import EngineAPI
#if canImport(Glibc)
import Glibc
#endif

/// The `rocksdb` engine: librocksdb (C API, Debian's 7.8) behind the `StorageEngine` contract.
///
/// - Configuration (`RocksDBSettings`, reasons in README.md): WAL synced on every `sync: true`
///   write; level compaction with dynamic level sizes; block-based tables of 16 KiB blocks with
///   full bloom filters (10 bits per key) and an LRU block cache of `options.cacheBytes` that
///   also holds index and filter blocks; lz4, zstd on the last level; values of 4 KiB and more
///   in blob files (lz4, garbage-collected by compaction); a memtable of
///   `options.writeBufferBytes`; checksums verified on every read when `options.paranoidChecks`.
/// - Writes: RocksDB's write thread serializes them; concurrent `write` calls with the same
///   `sync` join one write group, whose leader appends every batch of the group to the WAL and
///   syncs once for all of them (group commit; "writes.group.*" in the stats count leaders and
///   followers). rusd's store adds its own grouping above: one batch per applied group.
/// - Views: rocksdb snapshots. `reclaimSpace` compacts the whole key range down to the last
///   level with blob garbage collection of every blob file, while reads and writes continue.
/// - `maxSizeBytes`: a write that would take the files past it is refused with `.full` (checked
///   against the bytes on disk, rescanned at least every 4 MiB written).
/// - Stats: `diskBytes` = allocated size of the directory's files (WAL and MANIFEST: their
///   written size, see `RocksDBStoreFiles.diskBytes`); `liveBytes` = RocksDB's
///   estimate of live data in tables and blob files plus the WALs (the memtables);
///   `bytesWrittenSinceOpen` from RocksDB's statistics (WAL, flush and compaction I/O); no
///   `entryCount` (RocksDB only estimates it: "keys.estimate" in the details).
/// - Corruption: block checksums in tables, CRCs on WAL records and on each blob; a damaged
///   file is reported as `.corruption`. With paranoid checks, open also refuses a table file
///   whose size differs from the MANIFEST's. A WAL damaged anywhere but its torn tail is
///   refused at open.
public final class RocksDBEngine: StorageEngine, @unchecked Sendable {
    public static let engineName = "rocksdb"

    public var name: String { Self.engineName }
    public let directory: String
    private let database: RocksDBDatabase
    private let sizeLimit: RocksDBSizeLimit
    private let userBytes = EngineLocked<UInt64>(0)
    /// Serializes `reclaimSpace` calls (each changes and restores a blob GC option).
    private let reclaiming = EngineMutex()

    private init(directory: String, database: RocksDBDatabase, sizeLimit: RocksDBSizeLimit) {
        self.directory = directory
        self.database = database
        self.sizeLimit = sizeLimit
    }

    deinit { database.close() }

    /// Opens (or creates, if `options.createIfMissing`) the store in `directory`.
    public static func open(directory: String, options: EngineOptions = EngineOptions()) throws -> RocksDBEngine {
        try loadLibrary(directory: directory)
        if !PosixFiles.exists(directory + "/CURRENT") && !options.createIfMissing {
            throw EngineError(.notFound, engine: engineName, path: directory, operation: "open",
                              message: "no RocksDB store here (no CURRENT file) and createIfMissing is false")
        }
        let files: [FileEntry]
        do {
            try PosixFiles.makeDirectories(directory)
            files = try PosixFiles.listFiles(directory, recursive: false)
        } catch let e as PosixError {
            throw EngineError(.io, engine: engineName, path: e.path, operation: "open", message: e.message)
        }
        try RocksDBStoreFiles.checkOwnership(directory: directory, names: files.map(\.name))
        let database = try RocksDBDatabase(path: directory, options: options)
        let sizeLimit = RocksDBSizeLimit(directory: directory, maxSizeBytes: options.maxSizeBytes,
                                         diskBytes: RocksDBStoreFiles.diskBytes(files))
        return RocksDBEngine(directory: directory, database: database, sizeLimit: sizeLimit)
    }

    /// librocksdb is loaded when the first rocksdb store opens, not linked into every rusd
    /// (Sources/Engines/CRocksDBLoader): no RocksDB function may run before this succeeds.
    private static func loadLibrary(directory: String) throws {
        var reason = [CChar](repeating: 0, count: 512)
        guard rusd_rocksdb_load(&reason, Int32(reason.count)) == 0 else {
            let message = reason.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            throw EngineError(.io, engine: engineName, path: directory, operation: "open", message: message)
        }
    }

    public func get(_ key: [UInt8]) throws -> [UInt8]? {
        try database.withDatabase(operation: "get") { db in
            try RocksDBReads.get(db, database.settings.readOptions, key, path: directory)
        }
    }

    public func readView() throws -> any ReadView {
        try RocksDBReadView(database: database)
    }

    public func write(_ batch: WriteBatch, sync: Bool) throws {
        try database.withDatabase(operation: "write") { db in
            if batch.isEmpty { return }
            let bytes = UInt64(batch.byteCount)
            try sizeLimit.check(adding: bytes)
            guard let writeBatch = rocksdb_writebatch_create() else {
                throw RocksDBErrors.allocationFailed("rocksdb_writebatch_create", path: directory, operation: "write")
            }
            defer { rocksdb_writebatch_destroy(writeBatch) }
            for op in batch.operations {
                switch op {
                case .put(let key, let value):
                    withCBytes(key) { k, kn in withCBytes(value) { v, vn in rocksdb_writebatch_put(writeBatch, k, kn, v, vn) } }
                case .delete(let key):
                    withCBytes(key) { k, kn in rocksdb_writebatch_delete(writeBatch, k, kn) }
                }
            }
            var err: UnsafeMutablePointer<CChar>?
            rocksdb_write(db, sync ? database.settings.syncWrite : database.settings.asyncWrite, writeBatch, &err)
            if let error = RocksDBErrors.take(err, path: directory, operation: "write") { throw error }
            sizeLimit.recordWrite(bytes)
            userBytes.withLock { $0 += bytes }
            if !sync { database.unsyncedWrites.withLock { $0 = true } }
        }
    }

    /// Compacts everything to the last level (tombstones and overwritten versions not pinned by
    /// a view are dropped) and, for its duration, lets blob GC relocate the live blobs of every
    /// blob file, so blob files holding only garbage are deleted.
    public func reclaimSpace() throws {
        try reclaiming.withLock {
            try database.withDatabase(operation: "reclaimSpace") { db in
                try setBlobGarbageCollectionAgeCutoff(db, "1.0")
                defer { try? setBlobGarbageCollectionAgeCutoff(db, "\(RocksDBSettings.blobGarbageCollectionAgeCutoff)") }
                guard let compact = rocksdb_compactoptions_create() else {
                    throw RocksDBErrors.allocationFailed("rocksdb_compactoptions_create", path: directory, operation: "reclaimSpace")
                }
                defer { rocksdb_compactoptions_destroy(compact) }
                rocksdb_compactoptions_set_exclusive_manual_compaction(compact, 0)
                rocksdb_compactoptions_set_bottommost_level_compaction(compact, 3)  // kForceOptimized
                rocksdb_compact_range_opt(db, compact, nil, 0, nil, 0)
                // The C call returns no status: a compaction that failed in the background
                // shows up as a background error, which stops writes; report it here.
                if let errors = try database.numericProperty("rocksdb.background-errors"), errors > 0,
                   let stopped = try database.numericProperty("rocksdb.is-write-stopped"), stopped > 0 {
                    throw EngineError(.io, engine: Self.engineName, path: directory, operation: "reclaimSpace",
                                      message: "RocksDB reports \(errors) background error(s) and has stopped writes; see \(directory)/LOG")
                }
            }
        }
        _ = try sizeLimit.rescan(operation: "reclaimSpace")
    }

    private func setBlobGarbageCollectionAgeCutoff(_ db: OpaquePointer, _ value: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let keys = ["blob_garbage_collection_age_cutoff"], values = [value]
        withCStrings(keys) { k in withCStrings(values) { v in rocksdb_set_options(db, 1, k, v, &err) } }
        if let error = RocksDBErrors.take(err, path: directory, operation: "reclaimSpace") { throw error }
    }

    public func stats() throws -> EngineStats {
        let tickers = try database.withDatabase(operation: "stats") { _ in
            RocksDBStatistics.tickers(database.settings.statisticsText())
        }
        let files = try sizeLimit.rescan(operation: "stats")
        var details: [String: Double] = ["user.bytes": Double(userBytes.withLock { $0 })]
        for (ticker, detail) in RocksDBStatistics.tickerDetails {
            if let n = tickers[ticker] { details[detail] = Double(n) }
        }
        if let micros = tickers["rocksdb.stall.micros"] { details["stall.seconds"] = Double(micros) / 1_000_000 }
        for (property, detail) in RocksDBStatistics.propertyDetails {
            if let n = try database.numericProperty(property) { details[detail] = Double(n) }
        }
        for level in 0..<7 {
            if let n = try database.numericProperty("rocksdb.num-files-at-level\(level)") { details["level\(level).files"] = Double(n) }
        }
        let walBytes = files.filter { $0.name.hasSuffix(".log") }.reduce(0) { $0 + $1.size }
        details["log.bytes"] = Double(walBytes)
        let tablesAndBlobs = try database.numericProperty("rocksdb.estimate-live-data-size") ?? 0
        return EngineStats(liveBytes: tablesAndBlobs + walBytes, diskBytes: RocksDBStoreFiles.diskBytes(files),
                           bytesWrittenSinceOpen: RocksDBStatistics.bytesWritten(tickers), entryCount: nil,
                           details: details)
    }

    public func close() throws {
        database.close()
    }
}

/// Runs `body` with C strings for `strings` (valid only during the call).
private func withCStrings<T>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> T) -> T {
    let pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { for p in pointers { free(p) } }
    return body(pointers.map { UnsafePointer($0) })
}
