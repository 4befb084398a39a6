import CLevelDB
import EngineAPI

/// The `leveldb` engine: libleveldb (C API) behind the `StorageEngine` contract.
///
/// - Configuration: bloom filters (10 bits per key), an LRU block cache of
///   `options.cacheBytes`, a write buffer (memtable) of `options.writeBufferBytes`, snappy
///   compression, `paranoid_checks` and checksum verification on every read when
///   `options.paranoidChecks` (the default).
/// - Writes: LevelDB's own writer queue serializes them and merges concurrent batches into one
///   log record (one fsync for a group of `sync: true` writers). `sync: true` fsyncs the log.
/// - Views: leveldb snapshots; `reclaimSpace` compacts the whole key range
///   (leveldb_compact_range) while reads and writes continue.
/// - `maxSizeBytes`: a write that would take the files past it is refused with `.full` (checked
///   against the bytes on disk, rescanned at least every 4 MiB written).
/// - Stats: `diskBytes` = allocated size of the directory's files; `liveBytes` = LevelDB's
///   approximate size of the whole key range in tables plus the current log (the memtable);
///   `bytesWrittenSinceOpen` as described in `LevelDBWriteAccounting`; no `entryCount`.
/// - Corruption: block checksums; a damaged table or log is reported as `.corruption`. With
///   paranoid checks, open also refuses a table file whose size differs from the MANIFEST's.
public final class LevelDBEngine: StorageEngine, @unchecked Sendable {
    public static let engineName = "leveldb"
    static let diskRescanBytes: UInt64 = 4 << 20

    public var name: String { Self.engineName }
    public let directory: String
    private let database: LevelDBDatabase
    private let maxSizeBytes: UInt64?
    private let accounting: EngineLocked<Accounting>

    private struct Accounting {
        var writes: LevelDBWriteAccounting
        var diskBytes: UInt64
        var bytesSinceDiskScan: UInt64 = 0
    }

    private init(directory: String, database: LevelDBDatabase, maxSizeBytes: UInt64?, accounting: Accounting) {
        self.directory = directory
        self.database = database
        self.maxSizeBytes = maxSizeBytes
        self.accounting = EngineLocked(accounting)
    }

    deinit { database.close() }

    /// Opens (or creates, if `options.createIfMissing`) the store in `directory`.
    public static func open(directory: String, options: EngineOptions = EngineOptions()) throws -> LevelDBEngine {
        let hasStore = PosixFiles.exists(directory + "/CURRENT")
        if !hasStore && !options.createIfMissing {
            throw EngineError(.notFound, engine: engineName, path: directory, operation: "open",
                              message: "no LevelDB store here (no CURRENT file) and createIfMissing is false")
        }
        let files: [FileEntry]
        do {
            try PosixFiles.makeDirectories(directory)
            files = try PosixFiles.listFiles(directory, recursive: false)
        } catch let e as PosixError {
            throw EngineError(.io, engine: engineName, path: e.path, operation: "open", message: e.message)
        }
        // Without CURRENT only what LevelDB leaves behind a creation cut short (LOCK, LOG,
        // MANIFEST-000001, 000001.dbtmp) may be here; anything else is someone's data.
        func leftOfCreation(_ name: String) -> Bool {
            ["LOCK", "LOG", "LOG.old"].contains(name) || name.hasPrefix("MANIFEST-") || name.hasSuffix(".dbtmp")
        }
        if !hasStore, let foreign = files.first(where: { !leftOfCreation($0.name) }) {
            throw EngineError(.invalidArgument, engine: engineName, path: directory, operation: "open",
                              message: "the directory holds files that are not a LevelDB store, or one that lost its CURRENT file (\(foreign.name)); refusing to create a new store over them")
        }
        // With CURRENT, every file must be one LevelDB writes: another engine's store that also
        // has CURRENT and MANIFEST files (lsm's) is refused before LevelDB touches it.
        func levelDBFile(_ name: String) -> Bool {
            leftOfCreation(name) || name == "CURRENT" || name.hasSuffix(".log") || name.hasSuffix(".ldb")
                || name.hasSuffix(".sst") || name.hasSuffix(".dbtmp")
        }
        if hasStore, let foreign = files.first(where: { !levelDBFile($0.name) }) {
            throw EngineError(.invalidArgument, engine: engineName, path: directory, operation: "open",
                              message: "the directory holds a file LevelDB never writes (\(foreign.name)): not a LevelDB store; refusing to open it")
        }
        let baseline = files.compactMap { LevelDBWriteAccounting.tableNumber($0.name) }.max() ?? 0
        let database = try LevelDBDatabase(path: directory, options: options)
        if options.paranoidChecks {
            do {
                try LevelDBTableCheck.verify(directory: directory, sstables: try database.property("leveldb.sstables") ?? "")
            } catch {
                database.close()
                throw error
            }
        }
        let disk = files.reduce(0) { $0 + $1.allocated }
        return LevelDBEngine(directory: directory, database: database, maxSizeBytes: options.maxSizeBytes,
                             accounting: Accounting(writes: LevelDBWriteAccounting(baselineFileNumber: baseline),
                                                    diskBytes: disk))
    }

    public func get(_ key: [UInt8]) throws -> [UInt8]? {
        do {
            return try database.withDatabase(operation: "get") { db in
                try LevelDBReads.get(db, database.readOptions, key, path: directory)
            }
        } catch let error as EngineError {
            throw database.locateCorruption(error, key: key)
        }
    }

    public func readView() throws -> any ReadView {
        try LevelDBReadView(database: database)
    }

    public func write(_ batch: WriteBatch, sync: Bool) throws {
        try database.withDatabase(operation: "write") { db in
            if batch.isEmpty { return }
            try checkSizeLimit(adding: UInt64(batch.byteCount))
            guard let writeBatch = leveldb_writebatch_create() else {
                throw LevelDBErrors.error("IO error: leveldb_writebatch_create failed", path: directory, operation: "write")
            }
            defer { leveldb_writebatch_destroy(writeBatch) }
            for op in batch.operations {
                switch op {
                case .put(let key, let value):
                    withCBytes(key) { k, kn in withCBytes(value) { v, vn in leveldb_writebatch_put(writeBatch, k, kn, v, vn) } }
                case .delete(let key):
                    withCBytes(key) { k, kn in leveldb_writebatch_delete(writeBatch, k, kn) }
                }
            }
            var err: UnsafeMutablePointer<CChar>?
            leveldb_write(db, sync ? database.syncWrite : database.asyncWrite, writeBatch, &err)
            if let error = LevelDBErrors.take(err, path: directory, operation: "write") { throw error }
            accounting.withLock { $0.bytesSinceDiskScan += $0.writes.recordBatch(batch) }
            if !sync { database.unsyncedWrites.withLock { $0 = true } }
        }
    }

    private func checkSizeLimit(adding bytes: UInt64) throws {
        guard let maxSizeBytes else { return }
        let (estimate, stale) = accounting.withLock { ($0.diskBytes + $0.bytesSinceDiskScan, $0.bytesSinceDiskScan >= Self.diskRescanBytes) }
        var disk = estimate
        if stale || estimate + bytes > maxSizeBytes { disk = try scanDisk(operation: "write").disk }
        if disk + bytes > maxSizeBytes {
            throw EngineError(.full, engine: Self.engineName, path: directory, operation: "write",
                              message: "the store would exceed maxSizeBytes \(maxSizeBytes): \(disk) bytes on disk + \(bytes) bytes in this batch; nothing of the batch was applied")
        }
    }

    /// Lists the directory, refreshes the disk estimate and the table-file accounting.
    private func scanDisk(operation: String) throws -> (disk: UInt64, files: [FileEntry]) {
        let files: [FileEntry]
        do { files = try PosixFiles.listFiles(directory, recursive: false) } catch let e as PosixError {
            throw EngineError(.io, engine: Self.engineName, path: e.path, operation: operation, message: e.message)
        }
        let disk = files.reduce(0) { $0 + $1.allocated }
        accounting.withLock {
            $0.diskBytes = disk
            $0.bytesSinceDiskScan = 0
            $0.writes.observeTables(files)
        }
        return (disk, files)
    }

    public func reclaimSpace() throws {
        try database.withDatabase(operation: "reclaimSpace") { db in
            leveldb_compact_range(db, nil, 0, nil, 0)
        }
        _ = try scanDisk(operation: "reclaimSpace")
    }

    public func stats() throws -> EngineStats {
        let (disk, files) = try scanDisk(operation: "stats")
        let statsText = try database.property("leveldb.stats") ?? ""
        let rows = LevelDBWriteAccounting.parseStats(statsText)
        let tableWriteStats = UInt64(rows.reduce(0) { $0 + $1.writeMB } * 1_048_576)
        let tablesInRange = try database.withDatabase(operation: "stats") { db in approximateSizeOfEverything(db) }
        let logBytes = files.filter { $0.name.hasSuffix(".log") }.reduce(0) { $0 + $1.size }
        let writes = accounting.withLock { $0.writes }
        let tableBytes = max(tableWriteStats, writes.observedTableBytes)
        var details: [String: Double] = [
            "wal.bytes.written": Double(writes.walBytes),
            "tables.bytes.written": Double(tableBytes),
            "user.bytes.written": Double(writes.userBytes),
            "compaction.read.bytes": rows.reduce(0) { $0 + $1.readMB } * 1_048_576,
            "compaction.seconds": rows.reduce(0) { $0 + $1.seconds },
            "log.bytes": Double(logBytes),
        ]
        for level in 0..<7 {
            if let text = try database.property("leveldb.num-files-at-level\(level)"), let n = Double(text) {
                details["level\(level).files"] = n
            }
        }
        if let text = try database.property("leveldb.approximate-memory-usage"), let n = Double(text) {
            details["memory.approximate"] = n
        }
        return EngineStats(liveBytes: tablesInRange + logBytes, diskBytes: disk,
                           bytesWrittenSinceOpen: writes.walBytes + tableBytes, entryCount: nil, details: details)
    }

    /// LevelDB's estimate of the table bytes holding keys in ["", 0xFF x 64).
    private func approximateSizeOfEverything(_ db: OpaquePointer) -> UInt64 {
        let limit = [UInt8](repeating: 0xFF, count: 64)
        return withCBytes([]) { start, startLength in
            withCBytes(limit) { end, endLength in
                var starts: [UnsafePointer<CChar>?] = [start]
                var startLengths = [startLength]
                var limits: [UnsafePointer<CChar>?] = [end]
                var limitLengths = [endLength]
                var sizes: [UInt64] = [0]
                leveldb_approximate_sizes(db, 1, &starts, &startLengths, &limits, &limitLengths, &sizes)
                return sizes[0]
            }
        }
    }

    public func close() throws {
        database.close()
    }
}
