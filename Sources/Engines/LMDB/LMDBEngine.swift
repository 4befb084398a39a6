import CLMDB
import EngineAPI
#if canImport(Glibc)
import Glibc
#endif

/// The `lmdb` engine: liblmdb behind the `StorageEngine` contract.
///
/// On disk (`directory`):
///   LOCK                 flock held while open: one engine instance per directory
///   GENERATION           names the live generation ("gen-000001")
///   gen-NNNNNN/data.mdb  the LMDB environment (lock.mdb beside it); `mdb_stat <dir>/gen-NNNNNN`
/// `reclaimSpace` writes a compacted copy as the next generation and switches GENERATION.
///
/// - Map size: starts at max(256 MiB, 2 x the data file) and doubles inside `write` whenever
///   LMDB reports MDB_MAP_FULL (the failed transaction is retried after the remap), up to
///   `options.maxSizeBytes`, beyond which `write` throws `.full`. MDB_MAP_FULL never escapes.
/// - Readers: MDB_NOTLS; a view owns one read transaction. Readers never block the writer.
///   Reader slots of killed processes are freed at open (mdb_reader_check).
/// - Durability: commits with `sync: true` use LMDB's normal synced commit (fdatasync of the
///   data pages, then a synchronous meta page write); `sync: false` commits with
///   MDB_NOMETASYNC (data pages synced, meta page left to the next commit or the OS): a crash
///   may lose the last such commits but never corrupts the file.
/// - Keys: 1...511 bytes (LMDB's compile-time limit); other keys are refused with
///   `.invalidArgument` (reads of them return nil). Values: any size.
/// - `bytesWrittenSinceOpen`: bytes the committing thread passed to write(2)-family calls
///   during each write transaction (per-thread `wchar` of /proc/thread-self/io: LMDB's page and
///   meta writes), plus the compacted copies written by `reclaimSpace`.
/// - `liveBytes`: bytes of the B+tree pages holding live entries (branch + leaf + overflow
///   pages x page size), like etcd's "size in use"; `entryCount` is exact.
/// - Corruption: LMDB keeps no checksums. A data file that is not LMDB's, or shorter than its
///   meta page says, is refused at open with `.corruption`; a flipped byte inside a page is not
///   detectable and would be served.
/// - Do not call `write` from inside a scan's visitor: a write that must grow the map waits
///   for reads in progress, including that scan.
/// - `options.cacheBytes`, `writeBufferBytes`, `paranoidChecks` do not apply (the OS page
///   cache holds the map; there is no write buffer; no checksums exist).
public final class LMDBEngine: StorageEngine, @unchecked Sendable {
    public static let engineName = "lmdb"
    static let initialMapSize = 256 << 20
    static let generationPrefix = "gen-"
    /// The file naming the live generation.
    static let pointerFileName = "GENERATION"

    public var name: String { Self.engineName }
    public let directory: String
    private let maxMapSize: Int?

    /// Serializes write, reclaimSpace and close.
    private let writeLock = EngineMutex()
    private let state: EngineLocked<State>

    private struct State {
        var current: LMDBEnvironment?
        var retired: [WeakEnvironment] = []
        var directoryLock: DirectoryLock?
        var bytesWritten: UInt64 = 0
        var mapGrowths = 0
        var reclaims = 0
    }

    private struct WeakEnvironment {
        weak var environment: LMDBEnvironment?
    }

    private init(directory: String, maxMapSize: Int?, environment: LMDBEnvironment, lock: DirectoryLock) {
        self.directory = directory
        self.maxMapSize = maxMapSize
        self.state = EngineLocked(State(current: environment, directoryLock: lock))
    }

    deinit { try? close() }

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
            return LMDBEngine(directory: directory, maxMapSize: maxMapSize, environment: environment, lock: lock)
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
        let text = String(decoding: try PosixFiles.readFile(currentPath), as: UTF8.self)
        let name = text.trimmingSuffixNewlines()
        guard name.hasPrefix(generationPrefix), let generation = Int(name.dropFirst(generationPrefix.count)),
              generation > 0 else {
            throw EngineError(.corruption, engine: engineName, path: currentPath, operation: "open",
                              message: "GENERATION does not name a generation (\"gen-NNNNNN\"): \(String(text.prefix(40)).debugDescription)")
        }
        let dataPath = generationPath(directory, generation) + "/" + LMDBEnvironment.dataFileName
        guard PosixFiles.exists(dataPath) else {
            throw EngineError(.corruption, engine: engineName, path: dataPath, operation: "open",
                              message: "GENERATION names \(name) but its data file is missing")
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
        guard let environment = state.withLock({ $0.current }) else {
            throw LMDBErrors.closed(path: directory, operation: operation)
        }
        return environment
    }

    public func get(_ key: [UInt8]) throws -> [UInt8]? {
        try currentEnvironment("get").get(key)
    }

    public func readView() throws -> any ReadView {
        try LMDBReadView(environment: currentEnvironment("readView"))
    }

    public func write(_ batch: WriteBatch, sync: Bool) throws {
        try writeLock.withLock {
            let environment = try currentEnvironment("write")
            for op in batch.operations where op.key.isEmpty || op.key.count > environment.maxKeySize {
                throw EngineError(.invalidArgument, engine: Self.engineName, path: directory, operation: "write",
                                  message: "key of \(op.key.count) bytes: lmdb keys must be 1...\(environment.maxKeySize) bytes; nothing of the batch was applied")
            }
            if batch.isEmpty { return }
            let before = ThreadWriteCounter.bytesWritten()
            defer {
                if let before, let after = ThreadWriteCounter.bytesWritten(), after >= before {
                    state.withLock { $0.bytesWritten += after - before }
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
        state.withLock { $0.mapGrowths += 1 }
    }

    public func reclaimSpace() throws {
        try writeLock.withLock {
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
                state.withLock { $0.bytesWritten += copied }
                let fresh = try LMDBEnvironment.open(path: path, generation: generation, mapSize: old.mapSize)
                let currentText = Array("\(Self.generationName(generation))\n".utf8)
                var switchError: (any Error)?
                do {
                    try PosixFiles.replaceFileDurably(directory + "/" + Self.pointerFileName, with: currentText)
                } catch {
                    // If the rename happened (only the directory fsync failed), GENERATION already
                    // names the new generation: adopt it, then report the error.
                    guard (try? PosixFiles.readFile(directory + "/" + Self.pointerFileName)) == currentText else {
                        fresh.shutdown()
                        throw error
                    }
                    switchError = error
                }
                old.retire()
                state.withLock {
                    $0.current = fresh
                    $0.retired.removeAll { $0.environment == nil }
                    $0.retired.append(WeakEnvironment(environment: old))
                    $0.reclaims += 1
                }
                if let switchError { throw switchError }
            } catch {
                if state.withLock({ $0.current }) === old { try? PosixFiles.removeTree(path) }
                if let e = error as? PosixError { throw LMDBErrors.posix(e, operation: "reclaimSpace") }
                throw error
            }
        }
    }

    public func stats() throws -> EngineStats {
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
        let s = state.withLock { $0 }
        return EngineStats(
            liveBytes: treePages * pageSize,
            diskBytes: disk,
            bytesWrittenSinceOpen: s.bytesWritten,
            entryCount: UInt64(n.mainStat.ms_entries),
            details: [
                "map.bytes": Double(n.info.me_mapsize),
                "map.growths": Double(s.mapGrowths),
                "pages.last": Double(n.info.me_last_pgno),
                "pages.tree": Double(treePages),
                "pages.freelist.tree": Double(freeTreePages),
                "page.size": Double(pageSize),
                "tree.depth": Double(n.mainStat.ms_depth),
                "readers.slots.used": Double(n.info.me_numreaders),
                "readers.slots.max": Double(n.info.me_maxreaders),
                "readers.stale.cleared.at.open": Double(environment.staleReadersCleared),
                "reclaims": Double(s.reclaims),
                "generation": Double(environment.generation),
            ])
    }

    public func close() throws {
        writeLock.withLock {
            let (current, retired, lock) = state.withLock { s in
                defer {
                    s.current = nil
                    s.retired = []
                    s.directoryLock = nil
                }
                return (s.current, s.retired.compactMap(\.environment), s.directoryLock)
            }
            current?.shutdown()
            for environment in retired { environment.shutdown() }
            lock?.release()
        }
    }
}

extension String {
    func trimmingSuffixNewlines() -> String {
        var s = Substring(self)
        while let last = s.last, last == "\n" || last == "\r" || last == " " { s = s.dropLast() }
        return String(s)
    }
}
