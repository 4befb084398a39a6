import CLMDB
import EngineAPI
#if canImport(Glibc)
import Glibc
#endif

/// The `lmdb` engine: liblmdb behind the `StorageEngine` contract, with a write-ahead log in
/// front of it.
///
/// On disk (`directory`):
///   LOCK                 flock held while open: one engine instance per directory
///   GENERATION           names the live generation ("gen-000001")
///   gen-NNNNNN/data.mdb  the LMDB environment (lock.mdb beside it); `mdb_stat <dir>/gen-NNNNNN`
///   gen-NNNNNN/wal-*.log the write-ahead log (WriteAheadLog.swift)
/// `reclaimSpace` writes a compacted copy as the next generation and switches GENERATION.
///
/// - Write path: `write` appends the batch to the write-ahead log (one fdatasync with
///   `sync: true`) and applies it to the pending writes in memory (`PendingWrites`), which every
///   read consults before LMDB. A background thread commits the pending writes to LMDB in one
///   sorted, synced transaction every `flushInterval` (sooner past `flushTriggerBytes`), then
///   deletes the log segments LMDB now holds. This is etcd's design (WAL + batched bbolt commits +
///   a read buffer): an LMDB commit costs two syncs (data pages, then the meta page), a log
///   append one, and many writes share each LMDB commit. Writers wait while
///   `pendingLimitBytes` are pending and a commit is in progress. A failed LMDB commit is retried
///   by the next flush; until one succeeds, `write` throws its error (reads keep working; the
///   writes are safe in the log). A failed append is cut off the log and reported (`.full` for
///   ENOSPC); after a failed fdatasync, or an append that could not be cut off, every later
///   write is refused until the store is reopened: whether the record reached the disk is
///   unknown, and no later record may follow it.
/// - Recovery (open): the log's segments are committed to LMDB, oldest first, then deleted. A
///   torn last record (a crash during an append) is dropped: it was never acknowledged. Damage in
///   the middle of a segment is refused with `.corruption` naming the file and offset.
/// - Bounded stores (`options.maxSizeBytes` set) skip the log: each batch is committed straight
///   to LMDB, so that a batch past the limit is refused with `.full` before anything of it is
///   visible. rusd does not bound the engine (its space quota lives in the server).
/// - Map size: starts at max(256 MiB, 2 x the data file) and doubles whenever LMDB reports
///   MDB_MAP_FULL (the failed transaction is retried after the remap), up to
///   `options.maxSizeBytes`, beyond which `write` throws `.full`. MDB_MAP_FULL never escapes.
/// - Readers: MDB_NOTLS; a view owns one read transaction and the pending writes as of its
///   creation. Readers never block the writer.
///   Reader slots of killed processes are freed at open (mdb_reader_check).
/// - LMDB commits use LMDB's normal synced commit (fdatasync of the data pages, then a
///   synchronous meta page write). In bounded mode `sync: false` commits with MDB_NOMETASYNC
///   (data pages synced, meta page left to the next commit or the OS): a crash may lose the last
///   such commits but never corrupts the file.
/// - Keys: 1...511 bytes (LMDB's compile-time limit); other keys are refused with
///   `.invalidArgument` (reads of them return nil). Values: any size.
/// - `bytesWrittenSinceOpen`: log bytes appended, plus the bytes the committing thread passed to
///   write(2)-family calls during each LMDB write transaction (per-thread `wchar` of
///   /proc/thread-self/io: LMDB's page and meta writes), plus the compacted copies written by
///   `reclaimSpace`.
/// - `liveBytes`: bytes of the B+tree pages holding live entries (branch + leaf + overflow
///   pages x page size), like etcd's "size in use"; `entryCount` is exact (`stats` commits the
///   pending writes first).
/// - Corruption: log records carry CRC-32C checksums; LMDB keeps none. A data file that is not
///   LMDB's, or shorter than its meta page says, is refused at open with `.corruption`; a
///   flipped byte inside an LMDB page is not detectable and would be served.
/// - Do not call `write` from inside a scan's visitor: a write may wait for room while the
///   background commit waits for a map growth, which waits for reads in progress.
/// - `options.cacheBytes`, `writeBufferBytes`, `paranoidChecks` do not apply (the OS page
///   cache holds the map; log records are always verified).
public final class LMDBEngine: StorageEngine, @unchecked Sendable {
    public static let engineName = "lmdb"
    static let initialMapSize = 256 << 20
    static let generationPrefix = "gen-"
    /// The file naming the live generation.
    static let pointerFileName = "GENERATION"
    /// Longest time a write stays only in the log before the background commit to LMDB.
    static let flushInterval = 0.1
    /// Pending bytes that start the background commit early.
    static let flushTriggerBytes = 8 << 20
    /// Pending bytes above which writers wait for a commit in progress.
    static let pendingLimitBytes = 64 << 20

    public var name: String { Self.engineName }
    public let directory: String
    private let maxMapSize: Int?

    /// Lock order: `commitLock`, then `writeLock`, then the state mutex.
    /// Serializes LMDB write transactions, map growth, generation switches and close.
    private let commitLock = EngineMutex()
    /// Serializes `write` calls and the switch to a new log segment.
    private let writeLock = EngineMutex()
    /// The mutable state; its condition wakes the flusher and writers waiting for room.
    private let shared: SharedState

    /// The log segment being appended to, and its number (nil in bounded mode or once closed).
    /// Guarded by `writeLock`; replaced only with `commitLock` held too.
    private var log: RecordLogWriter?
    private var logNumber: UInt64 = 0

    private struct State {
        var current: LMDBEnvironment?
        var retired: [WeakEnvironment] = []
        var directoryLock: DirectoryLock?
        var pending = PendingLayers()
        /// When the oldest write of `pending.active` arrived (monotonic seconds).
        var oldestPendingAt: Double?
        /// The last background commit's failure, cleared by the next success.
        var commitError: (any Error)?
        /// Set by a failed log append or sync: every later write is refused with it.
        var logFailure: EngineError?
        var closing = false
        var bytesWritten: UInt64 = 0
        var mapGrowths = 0
        var reclaims = 0
        var pendingCommits = 0
    }

    private struct WeakEnvironment {
        weak var environment: LMDBEnvironment?
    }

    /// `State` with its mutex and a condition signalled when it changes. A separate object so
    /// that the background thread waits on it without keeping the engine alive.
    private final class SharedState: @unchecked Sendable {
        private let mutex = EngineMutex()
        private let changed = EngineCondition()
        private var state: State

        init(_ state: State) { self.state = state }

        func withLock<T>(_ body: (inout State) throws -> T) rethrows -> T {
            try mutex.withLock { try body(&state) }
        }

        /// Waits at most `seconds` for a `broadcast`; only inside `withLock`.
        func wait(seconds: Double) { changed.wait(mutex, seconds: seconds) }

        func broadcast() { changed.broadcast() }
    }

    private init(directory: String, maxMapSize: Int?, environment: LMDBEnvironment, lock: DirectoryLock) {
        self.directory = directory
        self.maxMapSize = maxMapSize
        self.shared = SharedState(State(current: environment, directoryLock: lock))
    }

    deinit { try? close() }

    private func withState<T>(_ body: (inout State) throws -> T) rethrows -> T {
        try shared.withLock(body)
    }

    /// Opens (or creates, if `options.createIfMissing`) the store in `directory`.
    public static func open(directory: String, options: EngineOptions = EngineOptions()) throws -> LMDBEngine {
        try open(directory: directory, options: options, initialMapSize: initialMapSize)
    }

    /// `initialMapSize` is the map size a new or small store starts with (tests use a small
    /// one to exercise growth).
    static func open(directory: String, options: EngineOptions, initialMapSize: Int) throws -> LMDBEngine {
        let fail = { (e: PosixError) in LMDBErrors.posix(e, operation: "open") }
        if !PosixFiles.isDirectory(directory) {
            guard options.createIfMissing else {
                throw EngineError(.notFound, engine: engineName, path: directory, operation: "open",
                                  message: "no store here and createIfMissing is false")
            }
            do { try PosixFiles.makeDirectories(directory) } catch let e as PosixError { throw fail(e) }
        }
        let lock: DirectoryLock
        do { lock = try DirectoryLock(path: directory + "/LOCK") } catch let e as PosixError {
            throw EngineError(.io, engine: engineName, path: directory, operation: "open",
                              message: "\(e.message): the store is already open (another engine instance holds its LOCK)")
        }
        let maxMapSize = options.maxSizeBytes.map { max(Int(clamping: $0) / 4096 * 4096, 4096 * 4) }
        do {
            let generation = try currentGeneration(directory: directory, createIfMissing: options.createIfMissing)
            let path = generationPath(directory, generation)
            try removeStaleGenerations(directory: directory, keeping: generation)
            let existing = (try? PosixFiles.fileSize(path + "/" + LMDBEnvironment.dataFileName)) ?? 0
            var mapSize = max(initialMapSize, Int(existing) * 2)
            mapSize = (mapSize + 4095) / 4096 * 4096
            if let maxMapSize { mapSize = min(mapSize, maxMapSize) }
            let environment = try LMDBEnvironment.open(path: path, generation: generation, mapSize: mapSize)
            if !PosixFiles.exists(directory + "/" + pointerFileName) {
                try PosixFiles.replaceFileDurably(directory + "/" + pointerFileName, with: Array("\(generationName(generation))\n".utf8))
            }
            let engine = LMDBEngine(directory: directory, maxMapSize: maxMapSize, environment: environment, lock: lock)
            do {
                try engine.recoverLog()
            } catch {
                try? engine.close()
                throw error
            }
            if maxMapSize == nil { engine.startFlusher() }
            return engine
        } catch let e as PosixError {
            throw fail(e)
        }
    }

    // MARK: Generations

    static func generationName(_ generation: Int) -> String {
        let digits = String(generation)
        return generationPrefix + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    static func generationPath(_ directory: String, _ generation: Int) -> String {
        directory + "/" + generationName(generation)
    }

    /// The generation GENERATION names; a new store gets generation 1 (GENERATION is written once its
    /// environment exists).
    private static func currentGeneration(directory: String, createIfMissing: Bool) throws -> Int {
        let currentPath = directory + "/" + pointerFileName
        guard PosixFiles.exists(currentPath) else {
            guard createIfMissing else {
                throw EngineError(.notFound, engine: engineName, path: directory, operation: "open",
                                  message: "no GENERATION file: not an lmdb engine store, and createIfMissing is false")
            }
            let foreign = try PosixFiles.directoryNames(directory).filter {
                $0 != "LOCK" && !$0.hasPrefix(generationPrefix) && !$0.hasPrefix(pointerFileName)
            }
            if !foreign.isEmpty {
                throw EngineError(.invalidArgument, engine: engineName, path: directory, operation: "open",
                                  message: "the directory holds files that are not an lmdb engine store (\(foreign.prefix(5).joined(separator: ", "))); refusing to create a new store over them")
            }
            let path = generationPath(directory, 1)
            try PosixFiles.removeTree(path)  // leftovers of a creation that crashed before GENERATION
            try PosixFiles.makeDirectories(path)
            return 1
        }
        let generation = try Self.generation(pointerFile: try PosixFiles.readFile(currentPath), path: currentPath)
        let name = generationName(generation)
        let dataPath = generationPath(directory, generation) + "/" + LMDBEnvironment.dataFileName
        guard PosixFiles.exists(dataPath) else {
            throw EngineError(.corruption, engine: engineName, path: dataPath, operation: "open",
                              message: "GENERATION names \(name) but its data file is missing")
        }
        return generation
    }

    /// The generation GENERATION's bytes (`contents`, read from `path`) name ("gen-NNNNNN", newlines,
    /// carriage returns and spaces after it ignored): decimal digits only (`Int` alone took "+1"),
    /// and below Int.max (`switchGeneration` makes the next one). Anything else is `.corruption`
    /// naming `path`. Pure, so that it can be fuzzed (Tests/Fuzz/Targets, `data-dir-marker`).
    package static func generation(pointerFile contents: [UInt8], path: String) throws -> Int {
        let text = String(decoding: contents, as: UTF8.self)
        let name = text.trimmingSuffixNewlines()
        let digits = name.utf8.dropFirst(generationPrefix.utf8.count)
        guard name.hasPrefix(generationPrefix), digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let generation = Int(name.dropFirst(generationPrefix.count)), generation > 0, generation < Int.max else {
            throw EngineError(.corruption, engine: engineName, path: path, operation: "open",
                              message: "GENERATION does not name a generation (\"gen-NNNNNN\"): \(String(text.prefix(40)).debugDescription)")
        }
        return generation
    }

    /// Deletes generations other than the live one (left by a crash during reclaimSpace, or
    /// retired ones whose views were still open at a crash).
    private static func removeStaleGenerations(directory: String, keeping generation: Int) throws {
        let keep = generationName(generation)
        for name in try PosixFiles.directoryNames(directory) where name.hasPrefix(generationPrefix) && name != keep {
            try PosixFiles.removeTree(directory + "/" + name)
        }
        try PosixFiles.removeTree(directory + "/" + pointerFileName + ".tmp")
    }

    // MARK: StorageEngine

    private func currentEnvironment(_ operation: String) throws -> LMDBEnvironment {
        guard let environment = withState({ $0.current }) else {
            throw LMDBErrors.closed(path: directory, operation: operation)
        }
        return environment
    }

    public func get(_ key: [UInt8]) throws -> [UInt8]? {
        let (pending, environment) = withState { ($0.pending.lookup(key), $0.current) }
        if let pending { return pending }
        guard let environment else { throw LMDBErrors.closed(path: directory, operation: "get") }
        return try environment.get(key)
    }

    public func readView() throws -> any ReadView {
        // The LMDB transaction begins under the state mutex, so that it and the pending writes
        // captured with it are one consistent state (a background commit clears `sealed` only
        // after LMDB holds it).
        try withState { s in
            guard let environment = s.current else { throw LMDBErrors.closed(path: directory, operation: "readView") }
            return try LMDBReadView(environment: environment, pending: s.pending)
        }
    }

    public func write(_ batch: WriteBatch, sync: Bool) throws {
        if maxMapSize != nil {
            try commitLock.withLock { try writeLock.withLock { try writeBounded(batch, sync: sync) } }
            return
        }
        try waitForRoom()
        try writeLock.withLock {
            let (current, failure) = withState { ($0.current, $0.logFailure ?? $0.commitError) }
            guard let environment = current, let log else { throw LMDBErrors.closed(path: directory, operation: "write") }
            try validateKeys(batch, environment)
            if batch.isEmpty { return }
            if let failure { throw failure }
            var record: [UInt8] = []
            record.reserveCapacity(batch.byteCount + 16 + 4 * batch.count)
            WriteAheadLog.appendRecord(batch, to: &record)
            do {
                try log.append(record)
            } catch let e as PosixError {
                // Nothing of the record stays in the log unless it could not be cut off.
                let failure = LMDBErrors.posix(e, kind: e.code == ENOSPC || e.code == EDQUOT ? .full : .io, operation: "write")
                if log.isBroken { refuseWrites(after: failure) }
                throw failure
            }
            if sync {
                do { try log.sync() } catch let e as PosixError {
                    // After a failed fdatasync the kernel may have dropped the dirty pages: whether
                    // the record reached the disk is unknown, so nothing more is appended (a later
                    // record could revive a batch its writer was told had failed). Reopening
                    // recovers what the log holds.
                    let failure = LMDBErrors.posix(e, operation: "write")
                    refuseWrites(after: failure)
                    throw failure
                }
            }
            withState { s in
                s.pending.active.apply(batch)
                s.bytesWritten += UInt64(record.count)
                if s.oldestPendingAt == nil {
                    s.oldestPendingAt = monotonicSeconds()
                    shared.broadcast()
                } else if s.pending.active.byteCount >= Self.flushTriggerBytes {
                    shared.broadcast()
                }
            }
        }
    }

    /// Makes every later write fail: the log can no longer be trusted to be appended to.
    private func refuseWrites(after failure: EngineError) {
        let refused = EngineError(failure.kind, engine: Self.engineName, path: failure.path, operation: "write",
                                  message: "the write-ahead log failed earlier (\(failure.message)); writes are refused until the store is reopened")
        withState { $0.logFailure = refused }
    }

    private func validateKeys(_ batch: WriteBatch, _ environment: LMDBEnvironment) throws {
        for op in batch.operations where op.key.isEmpty || op.key.count > environment.maxKeySize {
            throw EngineError(.invalidArgument, engine: Self.engineName, path: directory, operation: "write",
                              message: "key of \(op.key.count) bytes: lmdb keys must be 1...\(environment.maxKeySize) bytes; nothing of the batch was applied")
        }
    }

    /// Waits while too much is pending and a commit is under way (it will make room).
    private func waitForRoom() throws {
        try withState { s in
            while s.pending.active.byteCount >= Self.pendingLimitBytes && s.pending.sealed != nil
                    && s.commitError == nil && !s.closing {
                shared.wait(seconds: 0.1)
            }
            if s.closing { throw LMDBErrors.closed(path: directory, operation: "write") }
        }
    }

    /// Bounded mode: the batch is committed straight to LMDB. `commitLock` and `writeLock` held.
    private func writeBounded(_ batch: WriteBatch, sync: Bool) throws {
        let environment = try currentEnvironment("write")
        try validateKeys(batch, environment)
        if batch.isEmpty { return }
        try commitToLMDB(batch, environment, sync: sync)
    }

    /// Commits `batch` in one LMDB transaction, growing the map as needed. `commitLock` held.
    private func commitToLMDB(_ batch: WriteBatch, _ environment: LMDBEnvironment, sync: Bool) throws {
        let before = ThreadWriteCounter.bytesWritten()
        defer {
            if let before, let after = ThreadWriteCounter.bytesWritten(), after >= before {
                withState { $0.bytesWritten += after - before }
            }
        }
        while true {
            do {
                try environment.apply(batch, sync: sync, operation: "write")
                return
            } catch is LMDBMapFull {
                try grow(environment, toFit: batch.byteCount)
            }
        }
    }

    /// Doubles the map (at least by twice the batch), capped at maxSizeBytes. Writer only.
    private func grow(_ environment: LMDBEnvironment, toFit bytes: Int) throws {
        let current = environment.mapSize
        var target = max(current * 2, current + 2 * bytes)
        target = (target + 4095) / 4096 * 4096
        if let maxMapSize { target = min(target, maxMapSize) }
        guard target > current else {
            throw EngineError(.full, engine: Self.engineName, path: environment.dataPath, operation: "write",
                              message: "the store reached its size limit (maxSizeBytes \(maxMapSize ?? current)); nothing of the batch was applied")
        }
        try environment.setMapSize(target, operation: "write")
        withState { $0.mapGrowths += 1 }
    }

    // MARK: Write-ahead log

    /// Commits what the log holds to LMDB and deletes its segments; then opens a new segment
    /// (unbounded mode). Called once by `open`.
    private func recoverLog() throws {
        try commitLock.withLock {
            try writeLock.withLock {
                let environment = try currentEnvironment("open")
                var last: UInt64 = 0
                do {
                    let segments = try WriteAheadLog.segments(in: environment.path)
                    var combined = WriteBatch()
                    for segment in segments {
                        for batch in try WriteAheadLog.readSegment(segment.path) { combined.append(contentsOf: batch) }
                        last = segment.number
                    }
                    if !combined.isEmpty { try commitToLMDB(combined, environment, sync: true) }
                    for segment in segments { try PosixFiles.removeTree(segment.path) }
                    if !segments.isEmpty { try PosixFiles.fsyncPath(environment.path) }
                    if maxMapSize == nil { try openSegment(last + 1, in: environment) }
                } catch let e as PosixError {
                    throw LMDBErrors.posix(e, operation: "open")
                }
            }
        }
    }

    /// Creates segment `number` and makes its directory entry durable.
    private func createSegment(_ number: UInt64, in environment: LMDBEnvironment) throws -> RecordLogWriter {
        let writer = try RecordLogWriter(path: WriteAheadLog.segmentPath(environment.path, number),
                                         preallocate: WriteAheadLog.preallocationStep)
        try PosixFiles.fsyncPath(environment.path)
        return writer
    }

    /// Makes a new segment `number` the one appended to. `writeLock` held.
    private func openSegment(_ number: UInt64, in environment: LMDBEnvironment) throws {
        log = try createSegment(number, in: environment)
        logNumber = number
    }

    /// Seals the active pending writes and switches the log to a new segment, then commits the
    /// sealed writes to LMDB (synced) and deletes the segments they came from. `commitLock`
    /// held; takes `writeLock` for the switch unless `writeLockHeld`.
    private func commitPending(writeLockHeld: Bool = false) throws {
        guard let environment = withState({ $0.current }) else { return }
        let hasActive = withState { !$0.pending.active.isEmpty }
        // The next segment is created (and its directory entry synced) before taking the write
        // lock, so that writers do not wait for the directory fsync.
        var next: RecordLogWriter? = nil
        if hasActive, log != nil {
            do { next = try createSegment(logNumber + 1, in: environment) } catch let e as PosixError {
                throw LMDBErrors.posix(e, operation: "write")
            }
        }
        let sealActive = { () -> Bool in
            self.withState { s in
                if let next, !s.pending.active.isEmpty {
                    // The previous segment stays on disk until LMDB holds what it logged.
                    self.log = next
                    self.logNumber += 1
                    s.pending.seal()
                    s.oldestPendingAt = nil
                }
                return s.pending.sealed != nil
            }
        }
        let hasSealed = writeLockHeld ? sealActive() : writeLock.withLock { sealActive() }
        if let next, log !== next { try? PosixFiles.removeTree(next.path) }  // nothing was sealed
        guard hasSealed, let sealed = withState({ $0.pending.sealed }) else { return }
        do {
            try commitToLMDB(sealed.sortedBatch(), environment, sync: true)
        } catch {
            withState { $0.commitError = error }
            throw error
        }
        let current = logNumber
        withState { s in
            s.pending.sealed = nil
            s.commitError = nil
            s.pendingCommits += 1
            shared.broadcast()
        }
        do {
            for segment in try WriteAheadLog.segments(in: environment.path) where segment.number < current {
                try PosixFiles.removeTree(segment.path)
                try PosixFiles.fsyncPath(environment.path)
            }
        } catch let e as PosixError {
            throw LMDBErrors.posix(e, operation: "write")
        }
    }

    /// Starts the background thread that commits pending writes to LMDB. It waits on the
    /// shared state alone and holds the engine only while committing, so an engine released
    /// without `close` is closed by its deinit (possibly on this thread, after a commit).
    private func startFlusher() {
        let shared = self.shared
        let weakEngine = WeakEngine(self)
        pthread_detach(startThread {
            while let due = Self.waitForDueWrites(shared) {
                if due {
                    guard let engine = weakEngine.engine else { return }
                    engine.commitDueWrites()
                } else if weakEngine.engine == nil {
                    return
                }
            }
        })
    }

    private final class WeakEngine: @unchecked Sendable {
        weak var engine: LMDBEngine?
        init(_ engine: LMDBEngine) { self.engine = engine }
    }

    /// Waits at most 0.1 s for pending writes to come due (or a failed commit to retry):
    /// true when they are, false when not yet, nil once the engine is closing.
    private static func waitForDueWrites(_ shared: SharedState) -> Bool? {
        shared.withLock { s in
            if s.closing || s.current == nil { return nil }
            guard let oldest = s.oldestPendingAt else {
                if s.pending.sealed != nil && s.commitError != nil { return true }
                shared.wait(seconds: 0.1)
                return false
            }
            let age = monotonicSeconds() - oldest
            if age >= flushInterval || s.pending.active.byteCount >= flushTriggerBytes { return true }
            shared.wait(seconds: min(0.1, flushInterval - age))
            return false
        }
    }

    private func commitDueWrites() {
        do {
            try commitLock.withLock { try commitPending() }
        } catch {
            // Recorded in `commitError` (writes report it); retried after a pause.
            withState { s in _ = s.closing ? () : shared.wait(seconds: Self.flushInterval) }
        }
    }

    public func reclaimSpace() throws {
        try commitLock.withLock {
            try writeLock.withLock {
                try commitPending(writeLockHeld: true)
                try switchGeneration()
            }
        }
    }

    /// Writes a compacted copy as the next generation and makes it live. Both locks held; no
    /// writes are pending.
    private func switchGeneration() throws {
        let old = try currentEnvironment("reclaimSpace")
        let generation = old.generation + 1
        let path = Self.generationPath(directory, generation)
        let dataPath = path + "/" + LMDBEnvironment.dataFileName
        do {
            try PosixFiles.removeTree(path)
            try PosixFiles.makeDirectories(path)
            try old.copyCompacted(to: path, operation: "reclaimSpace")
            try PosixFiles.fsyncPath(dataPath)
            try PosixFiles.fsyncPath(path)
            let copied = try PosixFiles.fileSize(dataPath)
            withState { $0.bytesWritten += copied }
            let fresh = try LMDBEnvironment.open(path: path, generation: generation, mapSize: old.mapSize)
            let (oldLog, oldLogNumber) = (log, logNumber)
            if log != nil {
                do { try openSegment(1, in: fresh) } catch {
                    fresh.shutdown()
                    throw error
                }
            }
            let currentText = Array("\(Self.generationName(generation))\n".utf8)
            var switchError: (any Error)?
            do {
                try PosixFiles.replaceFileDurably(directory + "/" + Self.pointerFileName, with: currentText)
            } catch {
                // If the rename happened (only the directory fsync failed), GENERATION already
                // names the new generation: adopt it, then report the error.
                guard (try? PosixFiles.readFile(directory + "/" + Self.pointerFileName)) == currentText else {
                    fresh.shutdown()
                    (log, logNumber) = (oldLog, oldLogNumber)  // keep appending to the old generation's log
                    throw error
                }
                switchError = error
            }
            old.retire()
            withState { s in
                s.current = fresh
                s.retired.removeAll { $0.environment == nil }
                s.retired.append(WeakEnvironment(environment: old))
                s.reclaims += 1
            }
            if let switchError { throw switchError }
        } catch {
            if withState({ $0.current }) === old { try? PosixFiles.removeTree(path) }
            if let e = error as? PosixError { throw LMDBErrors.posix(e, operation: "reclaimSpace") }
            throw error
        }
    }

    public func stats() throws -> EngineStats {
        try commitLock.withLock { try commitPending() }
        let environment = try currentEnvironment("stats")
        let n = try environment.numbers()
        let pageSize = UInt64(n.envStat.ms_psize)
        let treePages = UInt64(n.mainStat.ms_branch_pages + n.mainStat.ms_leaf_pages + n.mainStat.ms_overflow_pages)
        let freeTreePages = UInt64(n.freeStat.ms_branch_pages + n.freeStat.ms_leaf_pages + n.freeStat.ms_overflow_pages)
        var disk: UInt64 = 0
        do {
            for file in try PosixFiles.listFiles(directory) { disk += file.allocated }
        } catch let e as PosixError {
            throw LMDBErrors.posix(e, operation: "stats")
        }
        let s = withState { ($0.bytesWritten, $0.mapGrowths, $0.reclaims, $0.pendingCommits) }
        return EngineStats(
            liveBytes: treePages * pageSize,
            diskBytes: disk,
            bytesWrittenSinceOpen: s.0,
            entryCount: UInt64(n.mainStat.ms_entries),
            details: [
                "map.bytes": Double(n.info.me_mapsize),
                "map.growths": Double(s.1),
                "pages.last": Double(n.info.me_last_pgno),
                "pages.tree": Double(treePages),
                "pages.freelist.tree": Double(freeTreePages),
                "page.size": Double(pageSize),
                "tree.depth": Double(n.mainStat.ms_depth),
                "readers.slots.used": Double(n.info.me_numreaders),
                "readers.slots.max": Double(n.info.me_maxreaders),
                "readers.stale.cleared.at.open": Double(environment.staleReadersCleared),
                "reclaims": Double(s.2),
                "generation": Double(environment.generation),
                "log.commits": Double(s.3),
            ])
    }

    public func close() throws {
        var failure: (any Error)?
        commitLock.withLock {
            writeLock.withLock {
                if withState({ $0.current }) != nil {
                    do { try commitPending(writeLockHeld: true) } catch { failure = error }
                }
                let (current, retired, lock) = withState { s in
                    defer {
                        s.current = nil
                        s.retired = []
                        s.directoryLock = nil
                        s.closing = true
                        shared.broadcast()
                    }
                    return (s.current, s.retired.compactMap(\.environment), s.directoryLock)
                }
                if failure == nil, let log, let current {
                    // Everything is in LMDB: the last segment is empty of anything needed.
                    try? PosixFiles.removeTree(log.path)
                    try? PosixFiles.fsyncPath(current.path)
                }
                log = nil
                current?.shutdown()
                for environment in retired { environment.shutdown() }
                lock?.release()
            }
        }
        if let failure { throw failure }
    }
}


extension String {
    func trimmingSuffixNewlines() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == "\r" || last == " " { s = s.dropLast() }
        return String(s)
    }
}
