import CSQLite
import EngineAPI

/// The state an open sqlite engine shares with its read views: the connections, the locks that
/// serialize their use, and the counters. `SQLiteEngine` is its public face; views keep it (not
/// the engine) alive, so an engine released while views live still closes.
///
/// Locks: `lifecycle` is held shared by every operation and exclusively by `close`, so no
/// connection is in use when it is closed. `writerLock` serializes every use of the writer
/// connection (group commits, stats, reclaimSpace). Order: lifecycle, then writerLock.
final class SQLiteStore: @unchecked Sendable {
    let directory: String
    let databasePath: String
    private let lifecycle = EngineRWLock()
    /// Written only with `lifecycle` held exclusively.
    private var closed = false
    private let writerLock = EngineMutex()
    /// Guarded by `writerLock`.
    private let writer: SQLiteConnection
    private var writerSynchronousFull = true
    private let checkpointer: WALCheckpointer
    /// Set when a commit failed with an I/O error: whether its WAL frames reached the disk is
    /// unknown, so every later write is refused until the store is reopened. Guarded by `writerLock`.
    private var writeFailure: EngineError?
    let readers: ReaderPool
    private let settings: SQLiteSettings
    private let commits = GroupCommitQueue()
    private let directoryLock: DirectoryLock
    private let counters = EngineLocked(Counters())
    /// Bytes of one WAL frame: a 24-byte frame header and a page.
    private let walFrameBytes: UInt64

    struct Counters {
        var bytesWritten: UInt64 = 0
        /// Pages the writer's commits handed to the WAL (SQLite's SQLITE_DBSTATUS_CACHE_WRITE).
        var walPages: UInt64 = 0
        var groupCommits: UInt64 = 0
        var batchesCommitted: UInt64 = 0
        var reclaims: UInt64 = 0
        var viewsOpened: UInt64 = 0
    }

    /// `pageSize`: the database's (PRAGMA page_size, read by the opener).
    init(directory: String, databasePath: String, writer: SQLiteConnection, pageSize: Int64, settings: SQLiteSettings,
         lock: DirectoryLock) {
        self.directory = directory
        self.walFrameBytes = 24 + UInt64(clamping: pageSize)
        self.databasePath = databasePath
        self.writer = writer
        self.readers = ReaderPool(path: databasePath, settings: settings)
        self.settings = settings
        self.checkpointer = WALCheckpointer(writer, settings: settings)
        self.directoryLock = lock
    }

    /// Runs `body` unless the store is closed (then `.closed`); `close` waits for it.
    func withOpen<T>(_ operation: String, _ body: () throws -> T) throws -> T {
        try lifecycle.withShared {
            if closed { throw SQLiteErrors.closed(path: directory, operation: operation) }
            return try body()
        }
    }

    /// Closes every connection (readers first, so that the writer's close is the last: it
    /// checkpoints the WAL into the database and deletes it) and releases the LOCK. Idempotent.
    func close() {
        lifecycle.withExclusive {
            if closed { return }
            closed = true
            readers.closeAll()
            writerLock.withLock {
                checkpointer.detach()
                writer.close()
            }
            directoryLock.release()
        }
    }

    /// Gives a view's connection back (its read transaction ended) unless the store closed it.
    func release(viewConnection connection: SQLiteConnection) {
        lifecycle.withShared {
            if closed { return }
            if connection.inTransaction { try? connection.run(.rollback, operation: "releaseView") }
            readers.checkIn(connection)
        }
    }

    func countView() { counters.withLock { $0.viewsOpened += 1 } }

    // MARK: Writes

    func write(_ batch: WriteBatch, sync: Bool) throws {
        try withOpen("write") {
            if batch.isEmpty { return }
            try commits.submit(batch, sync: sync) { group in commitGroup(group) }
        }
    }

    /// The leader's work: the group in one transaction; if that fails, each batch in its own, so
    /// that one bad batch (past maxSizeBytes) fails alone.
    private func commitGroup(_ group: [GroupCommitQueue.Ticket]) {
        writerLock.withLock {
            defer { countWALWrites() }
            do {
                try commit(group.map(\.batch), sync: group.contains { $0.sync })
                counters.withLock {
                    $0.groupCommits += 1
                    $0.batchesCommitted += UInt64(group.count)
                }
                counters.withLock { $0.bytesWritten += checkpointer.afterCommit() }
                return
            } catch {
                if group.count == 1 {
                    group[0].failure = error
                    return
                }
            }
            for ticket in group {
                do {
                    try commit([ticket.batch], sync: ticket.sync)
                    counters.withLock {
                        $0.groupCommits += 1
                        $0.batchesCommitted += 1
                    }
                    counters.withLock { $0.bytesWritten += checkpointer.afterCommit() }
                } catch {
                    ticket.failure = error
                }
            }
        }
    }

    /// One write transaction holding `batches`, committed with a WAL fsync when `sync`.
    /// `writerLock` held. On failure nothing of it is visible.
    private func commit(_ batches: [WriteBatch], sync: Bool) throws {
        if let writeFailure { throw writeFailure }
        try setSynchronous(full: sync)
        try writer.run(.beginImmediate, operation: "write")
        do {
            try writer.with(.put, operation: "write") { put in
                try writer.with(.delete, operation: "write") { delete in
                    for batch in batches {
                        for operation in batch.operations {
                            switch operation {
                            case .put(let key, let value):
                                try key.withUnsafeBytes { k in
                                    try value.withUnsafeBytes { v in
                                        try put.bind(1, k, operation: "write")
                                        try put.bind(2, v, operation: "write")
                                        try put.run(operation: "write")
                                    }
                                }
                            case .delete(let key):
                                try key.withUnsafeBytes { k in
                                    try delete.bind(1, k, operation: "write")
                                    try delete.run(operation: "write")
                                }
                            }
                        }
                    }
                }
            }
        } catch {
            rollback()
            throw describeFull(error)
        }
        do {
            try writer.run(.commit, operation: "write")
        } catch {
            rollback()
            if let e = error as? EngineError, e.kind == .io {
                writeFailure = EngineError(.io, engine: SQLiteEngine.engineName, path: e.path, operation: "write",
                                           message: "a commit failed earlier (\(e.message)); writes are refused until the store is reopened")
            }
            throw describeFull(error)
        }
    }

    private func rollback() {
        if writer.inTransaction { try? writer.run(.rollback, operation: "write") }
    }

    /// SQLITE_FULL is either the disk or max_page_count (maxSizeBytes): say which may apply.
    private func describeFull(_ error: any Error) -> any Error {
        guard var e = error as? EngineError, e.kind == .full else { return error }
        e.message += "; nothing of the batch was applied (the database is limited by maxSizeBytes when set, and by the disk)"
        return e
    }

    /// synchronous=FULL fsyncs the WAL at every commit; NORMAL leaves it to the next synced
    /// commit or checkpoint (a crash may lose such commits, never corrupt the file, and never
    /// keep a later commit while losing an earlier one: the WAL is replayed in order).
    private func setSynchronous(full: Bool) throws {
        if writerSynchronousFull == full { return }
        try writer.run(full ? .synchronousFull : .synchronousNormal, operation: "write")
        writerSynchronousFull = full
    }

    /// Counts the WAL frames the writer wrote since the last call, from SQLite's own count of
    /// pages its pager handed to the WAL (SQLITE_DBSTATUS_CACHE_WRITE, reset here): no system
    /// call on the write path (reading /proc/thread-self/io around every group commit cost two
    /// opens, reads and closes of a procfs file). The WAL's 32-byte header, rewritten when the
    /// WAL restarts from its beginning, is not counted. `writerLock` held.
    private func countWALWrites() {
        let pages = takeWALPageCount()
        if pages > 0 {
            counters.withLock {
                $0.walPages += pages
                $0.bytesWritten += pages * walFrameBytes
            }
        }
    }

    /// Pages the writer's pager wrote since the last call (and resets SQLite's count).
    private func takeWALPageCount() -> UInt64 {
        var pages: Int32 = 0
        var highest: Int32 = 0
        guard sqlite3_db_status(writer.handle, SQLITE_DBSTATUS_CACHE_WRITE, &pages, &highest, 1) == SQLITE_OK else { return 0 }
        return UInt64(clamping: pages)
    }

    // MARK: Maintenance

    /// VACUUM (rewrites the database without free pages, through the WAL), then a TRUNCATE
    /// checkpoint that copies it into the file and empties the WAL if no read view still needs
    /// older frames (otherwise later checkpoints finish the job once those views end).
    func reclaimSpace() throws {
        try withOpen("reclaimSpace") {
            try writerLock.withLock {
                if let writeFailure { throw writeFailure }
                // VACUUM writes through a temporary database and then the WAL: counted as what
                // this thread handed to write(2), and not again as WAL pages.
                let before = ThreadWriteCounter.bytesWritten()
                defer {
                    _ = takeWALPageCount()
                    if let before, let after = ThreadWriteCounter.bytesWritten(), after >= before {
                        counters.withLock { $0.bytesWritten += after - before }
                    }
                }
                try setSynchronous(full: true)
                try writer.execute("VACUUM", operation: "reclaimSpace")
                sqlite3_busy_timeout(writer.handle, 0)
                defer { sqlite3_busy_timeout(writer.handle, settings.busyTimeoutMilliseconds) }
                let code = sqlite3_wal_checkpoint_v2(writer.handle, nil, SQLITE_CHECKPOINT_TRUNCATE, nil, nil)
                if code != SQLITE_OK && code & 0xFF != SQLITE_BUSY {
                    throw writer.error(code, operation: "reclaimSpace", context: "checkpoint")
                }
                counters.withLock { $0.reclaims += 1 }
            }
        }
    }

    func stats() throws -> EngineStats {
        try withOpen("stats") {
            let (pageSize, pages, freePages, cache) = try writerLock.withLock { () -> (Int64, Int64, Int64, [String: Double]) in
                var cache: [String: Double] = [
                    "wal.frames": Double(checkpointer.walFrames),
                    "checkpoints.passive": Double(checkpointer.passiveCheckpoints),
                    "checkpoints.restart": Double(checkpointer.restarts),
                    "checkpoints.restart.timedout": Double(checkpointer.restartsTimedOut),
                    "checkpoints.failed": Double(checkpointer.failures),
                ]
                let pageSize = try writer.integer("PRAGMA page_size", operation: "stats")
                let pages = try writer.integer("PRAGMA page_count", operation: "stats")
                let free = try writer.integer("PRAGMA freelist_count", operation: "stats")
                // cache.write (pages written) is counted by countWALWrites, which resets SQLite's.
                for (name, op) in [("cache.hit", SQLITE_DBSTATUS_CACHE_HIT), ("cache.miss", SQLITE_DBSTATUS_CACHE_MISS),
                                   ("cache.used.bytes", SQLITE_DBSTATUS_CACHE_USED)] {
                    var current: Int32 = 0
                    var highest: Int32 = 0
                    if sqlite3_db_status(writer.handle, op, &current, &highest, 0) == SQLITE_OK { cache[name] = Double(current) }
                }
                return (pageSize, pages, free, cache)
            }
            let files: [FileEntry]
            do { files = try PosixFiles.listFiles(directory, recursive: false) } catch let e as PosixError {
                throw SQLiteErrors.posix(e, operation: "stats")
            }
            let disk = files.reduce(UInt64(0)) { $0 + $1.allocated }
            let wal = files.first { $0.name == SQLiteStoreFormat.databaseName + "-wal" }?.size ?? 0
            let c = counters.withLock { $0 }
            let readerCounts = readers.counts
            var details = cache
            details["page.size"] = Double(pageSize)
            details["pages"] = Double(pages)
            details["freelist.pages"] = Double(freePages)
            details["wal.bytes"] = Double(wal)
            details["group.commits"] = Double(c.groupCommits)
            details["batches.committed"] = Double(c.batchesCommitted)
            details["reclaims"] = Double(c.reclaims)
            details["views.opened"] = Double(c.viewsOpened)
            details["cache.write"] = Double(c.walPages)
            details["reader.connections"] = Double(readerCounts.open)
            details["reader.connections.idle"] = Double(readerCounts.idle)
            let live = UInt64(clamping: max(0, pages - freePages)) &* UInt64(clamping: max(0, pageSize))
            return EngineStats(liveBytes: live, diskBytes: disk, bytesWrittenSinceOpen: c.bytesWritten,
                               entryCount: nil, details: details)
        }
    }
}
