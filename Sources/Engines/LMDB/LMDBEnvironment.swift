import CLMDB
import EngineAPI
#if canImport(Glibc)
import Glibc
#endif

/// Thrown inside the write path when LMDB reports MDB_MAP_FULL; never leaves `LMDBEngine`.
struct LMDBMapFull: Error {}

/// One LMDB environment: the MDB_env of one generation directory of an `LMDBEngine`
/// (`<dir>/gen-NNNNNN/data.mdb` + `lock.mdb`), its map lock and its live read transactions.
///
/// Lifetime: the engine holds the current generation; read views hold the generation they
/// read. After `reclaimSpace` swaps in a compacted generation, the old one is `retired`: it
/// stays open for the views still reading it and is closed and deleted when the last of them
/// ends (deinit). `shutdown()` (engine close) ends every read transaction and closes it at once.
final class LMDBEnvironment: @unchecked Sendable {
    static let maxReaders: UInt32 = 1024
    static let dataFileName = "data.mdb"

    let path: String
    let generation: Int
    let pageSize: Int
    let maxKeySize: Int

    /// Shared: every use of the memory map (beginning read transactions, get, scan, stats, copy).
    /// Exclusive: remapping (mdb_env_set_mapsize) and closing. Readers are preferred, so nested
    /// reads never deadlock; the exclusive side is taken only on map growth and close.
    private let mapLock = EngineRWLock()
    /// nil once closed. Read under `mapLock` shared, written under `mapLock` exclusive.
    private var env: OpaquePointer?
    private let dbi: MDB_dbi
    /// Current map size. Changed only by the engine's writer under `mapLock` exclusive.
    private(set) var mapSize: Int
    /// Whether MDB_NOMETASYNC is currently set (writer only).
    private var metaSyncDeferred = false
    /// Whether a `sync: false` commit happened since the last synced one (writer and shutdown).
    private var hasUnsyncedCommits = false
    private let transactions = EngineLocked<[ObjectIdentifier: LMDBReadTransaction]>([:])
    /// Reset read transactions kept for reuse by `withReadTransaction` (at most
    /// `pooledTransactions`); aborted by `shutdown`.
    private let shortTransactions = EngineLocked<[OpaquePointer]>([])
    static let pooledTransactions = 8
    private let retiredFlag = EngineLocked(false)
    /// Dead readers' slots freed by mdb_reader_check at open.
    let staleReadersCleared: Int

    private init(path: String, generation: Int, env: OpaquePointer, dbi: MDB_dbi, mapSize: Int,
                 pageSize: Int, maxKeySize: Int, staleReadersCleared: Int) {
        self.path = path
        self.generation = generation
        self.env = env
        self.dbi = dbi
        self.mapSize = mapSize
        self.pageSize = pageSize
        self.maxKeySize = maxKeySize
        self.staleReadersCleared = staleReadersCleared
    }

    deinit {
        shutdown()
        if retiredFlag.withLock({ $0 }) { try? PosixFiles.removeTree(path) }
    }

    /// Opens (creating the data file if missing) the environment in directory `path`.
    /// Refuses a data file that is not LMDB's (MDB_INVALID) or shorter than its meta page says.
    static func open(path: String, generation: Int, mapSize requested: Int) throws -> LMDBEnvironment {
        var envPointer: OpaquePointer?
        var rc = mdb_env_create(&envPointer)
        guard rc == 0, let env = envPointer else {
            throw LMDBErrors.error(rc, path: path, operation: "open", context: "mdb_env_create")
        }
        var ok = false
        defer { if !ok { mdb_env_close(env) } }
        rc = mdb_env_set_maxreaders(env, maxReaders)
        guard rc == 0 else { throw LMDBErrors.error(rc, path: path, operation: "open", context: "mdb_env_set_maxreaders") }
        rc = mdb_env_set_mapsize(env, requested)
        guard rc == 0 else { throw LMDBErrors.error(rc, path: path, operation: "open", context: "mdb_env_set_mapsize") }
        // MDB_NOTLS: read transactions belong to their view object, not to a thread, so views can
        // move between threads. No MDB_NOSYNC / MDB_WRITEMAP: commits are synced (see write).
        rc = mdb_env_open(env, path, UInt32(MDB_NOTLS), 0o644)
        guard rc == 0 else {
            throw LMDBErrors.error(rc, path: path + "/" + dataFileName, operation: "open", context: "mdb_env_open")
        }
        var dead: Int32 = 0
        rc = mdb_reader_check(env, &dead)
        guard rc == 0 else { throw LMDBErrors.error(rc, path: path, operation: "open", context: "mdb_reader_check") }

        var info = MDB_envinfo()
        var stat = MDB_stat()
        mdb_env_info(env, &info)
        mdb_env_stat(env, &stat)
        let pageSize = Int(stat.ms_psize)
        // LMDB keeps no checksums; the one structural fact we can verify up front is that the
        // file holds every page its meta page refers to (a short file would SIGBUS on access).
        let dataPath = path + "/" + dataFileName
        let fileSize = try fileSizeOrThrow(dataPath)
        let needed = UInt64(info.me_last_pgno + 1) * UInt64(pageSize)
        if fileSize < needed {
            throw EngineError(.corruption, engine: LMDBEngine.engineName, path: dataPath, operation: "open",
                              message: "the file is truncated: it has \(fileSize) bytes but its meta page refers to page \(info.me_last_pgno), which needs \(needed) bytes")
        }

        var txn: OpaquePointer?
        rc = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn)
        guard rc == 0 else { throw LMDBErrors.error(rc, path: path, operation: "open", context: "mdb_txn_begin") }
        var dbi: MDB_dbi = 0
        rc = mdb_dbi_open(txn, nil, 0, &dbi)
        if rc != 0 {
            mdb_txn_abort(txn)
            throw LMDBErrors.error(rc, path: dataPath, operation: "open", context: "mdb_dbi_open")
        }
        rc = mdb_txn_commit(txn)
        guard rc == 0 else { throw LMDBErrors.error(rc, path: path, operation: "open", context: "mdb_txn_commit") }
        ok = true
        return LMDBEnvironment(path: path, generation: generation, env: env, dbi: dbi, mapSize: info.me_mapsize,
                               pageSize: pageSize, maxKeySize: Int(mdb_env_get_maxkeysize(env)),
                               staleReadersCleared: Int(dead))
    }

    private static func fileSizeOrThrow(_ path: String) throws -> UInt64 {
        do { return try PosixFiles.fileSize(path) } catch let e as PosixError {
            throw LMDBErrors.posix(e, operation: "open")
        }
    }

    var dataPath: String { path + "/" + Self.dataFileName }

    /// Marks this generation as replaced: its directory is deleted when it is released.
    func retire() { retiredFlag.withLock { $0 = true } }

    // MARK: Reading

    /// Runs `body` with the environment under the shared map lock.
    func withMap<T>(operation: String, _ body: (OpaquePointer) throws -> T) throws -> T {
        try mapLock.withShared {
            guard let env else { throw LMDBErrors.closed(path: path, operation: operation) }
            return try body(env)
        }
    }

    /// Runs `body` inside a short read transaction. Transactions are reused: after use they
    /// are reset (mdb_txn_reset keeps the handle and, with MDB_NOTLS, its reader slot) and
    /// renewed by the next call, which saves the allocation and the reader-table lock.
    func withReadTransaction<T>(operation: String, _ body: (OpaquePointer, MDB_dbi) throws -> T) throws -> T {
        try withMap(operation: operation) { env in
            var txn: OpaquePointer?
            if let pooled = shortTransactions.withLock({ $0.popLast() }) {
                if mdb_txn_renew(pooled) == 0 {
                    txn = pooled
                } else {
                    mdb_txn_abort(pooled)
                }
            }
            if txn == nil {
                let rc = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn)
                guard rc == 0 else { throw readBeginError(rc, operation: operation) }
            }
            let transaction = txn!
            defer {
                mdb_txn_reset(transaction)
                let kept = shortTransactions.withLock { pool -> Bool in
                    guard pool.count < Self.pooledTransactions else { return false }
                    pool.append(transaction)
                    return true
                }
                if !kept { mdb_txn_abort(transaction) }
            }
            return try body(transaction, dbi)
        }
    }

    private func readBeginError(_ rc: Int32, operation: String) -> EngineError {
        if rc == MDB_READERS_FULL {
            return LMDBErrors.error(rc, path: path, operation: operation,
                                    context: "all \(Self.maxReaders) reader slots are in use by live read views")
        }
        return LMDBErrors.error(rc, path: path, operation: operation, context: "mdb_txn_begin")
    }

    func get(_ key: [UInt8], operation: String = "get") throws -> [UInt8]? {
        if key.isEmpty || key.count > maxKeySize { return nil }  // cannot be stored
        return try withReadTransaction(operation: operation) { txn, dbi in
            try Self.get(key, txn: txn, dbi: dbi, path: path, operation: operation)
        }
    }

    static func get(_ key: [UInt8], txn: OpaquePointer, dbi: MDB_dbi, path: String, operation: String) throws -> [UInt8]? {
        var value = MDB_val()
        let rc = withMDBVal(key) { k in mdb_get(txn, dbi, &k, &value) }
        switch rc {
        case 0: return Array(value.buffer)
        case MDB_NOTFOUND: return nil
        default: throw LMDBErrors.error(rc, path: path, operation: operation, context: "mdb_get")
        }
    }

    /// Begins a long read transaction for a view.
    func beginView() throws -> LMDBReadTransaction {
        try withMap(operation: "readView") { env in
            var txn: OpaquePointer?
            let rc = mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn)
            guard rc == 0, let txn else { throw readBeginError(rc, operation: "readView") }
            let handle = LMDBReadTransaction(txn)
            transactions.withLock { $0[ObjectIdentifier(handle)] = handle }
            return handle
        }
    }

    /// Runs `body` with a view's transaction; throws `.closed` when the view was ended by close.
    func withView<T>(_ handle: LMDBReadTransaction, operation: String,
                     _ body: (OpaquePointer, MDB_dbi) throws -> T) throws -> T {
        try withMap(operation: operation) { _ in
            // Only shutdown (under the exclusive map lock) or the view's own deinit end the
            // transaction, so it stays valid for this call without holding the handle's mutex
            // (which lets a scan's visitor use the same view again).
            guard let txn = handle.current() else {
                throw LMDBErrors.closed(path: path, operation: operation)
            }
            return try body(txn, dbi)
        }
    }

    /// Ends a view's transaction (view deinit). Safe against a concurrent `shutdown`.
    func endView(_ handle: LMDBReadTransaction) {
        handle.end()
        transactions.withLock { _ = $0.removeValue(forKey: ObjectIdentifier(handle)) }
    }

    // MARK: Writing (the engine's writer only, under its write lock)

    /// Applies `batch` in one write transaction. Throws `LMDBMapFull` (nothing applied) when
    /// the map is too small.
    func apply(_ batch: WriteBatch, sync: Bool, operation: String) throws {
        try withMap(operation: operation) { env in
            // sync:false sets MDB_NOMETASYNC for this commit: the data pages are still fsynced
            // before the meta page is written, so a crash (even of the OS) loses at most the
            // latest commits and never corrupts the file. (MDB_NOSYNC would skip that ordering:
            // a power loss could then persist a meta page pointing at unwritten pages.)
            if metaSyncDeferred == sync {
                let rc = mdb_env_set_flags(env, UInt32(MDB_NOMETASYNC), sync ? 0 : 1)
                guard rc == 0 else { throw LMDBErrors.error(rc, path: path, operation: operation, context: "mdb_env_set_flags") }
                metaSyncDeferred = !sync
            }
            var txnPointer: OpaquePointer?
            var rc = mdb_txn_begin(env, nil, 0, &txnPointer)
            guard rc == 0, let txn = txnPointer else {
                throw LMDBErrors.error(rc, path: path, operation: operation, context: "mdb_txn_begin")
            }
            for op in batch.operations {
                switch op {
                case .put(let key, let value):
                    rc = withMDBVal(key) { k in withMDBVal(value) { v in mdb_put(txn, dbi, &k, &v, 0) } }
                case .delete(let key):
                    rc = withMDBVal(key) { k in mdb_del(txn, dbi, &k, nil) }
                    if rc == MDB_NOTFOUND { rc = 0 }
                }
                if rc != 0 {
                    mdb_txn_abort(txn)
                    if rc == MDB_MAP_FULL { throw LMDBMapFull() }
                    throw LMDBErrors.error(rc, path: dataPath, operation: operation,
                                           context: op.isPut ? "mdb_put" : "mdb_del")
                }
            }
            rc = mdb_txn_commit(txn)  // frees txn on failure too
            if rc == MDB_MAP_FULL { throw LMDBMapFull() }
            guard rc == 0 else { throw LMDBErrors.error(rc, path: dataPath, operation: operation, context: "mdb_txn_commit") }
            hasUnsyncedCommits = !sync
        }
    }

    /// Remaps to `size` bytes (the engine's writer only; no write transaction is active).
    /// Waits for reads in progress; idle read transactions survive a remap because LMDB
    /// resolves page addresses from the current map on each access.
    func setMapSize(_ size: Int, operation: String) throws {
        try mapLock.withExclusive {
            guard let env else { throw LMDBErrors.closed(path: path, operation: operation) }
            let rc = mdb_env_set_mapsize(env, size)
            guard rc == 0 else { throw LMDBErrors.error(rc, path: path, operation: operation, context: "mdb_env_set_mapsize") }
            var info = MDB_envinfo()
            mdb_env_info(env, &info)
            mapSize = info.me_mapsize
        }
    }

    /// A compacted copy of the current state into directory `target` (mdb_env_copy2 with
    /// MDB_CP_COMPACT: free pages omitted, pages renumbered).
    func copyCompacted(to target: String, operation: String) throws {
        try withMap(operation: operation) { env in
            let rc = mdb_env_copy2(env, target, UInt32(MDB_CP_COMPACT))
            guard rc == 0 else { throw LMDBErrors.error(rc, path: target, operation: operation, context: "mdb_env_copy2") }
        }
    }

    // MARK: Closing

    /// Ends every read transaction and closes the environment. Idempotent.
    func shutdown() {
        mapLock.withExclusive {
            guard let env else { return }
            let live = transactions.withLock { t -> [LMDBReadTransaction] in
                let all = Array(t.values)
                t.removeAll()
                return all
            }
            for handle in live { handle.end() }
            for txn in shortTransactions.withLock({ p -> [OpaquePointer] in defer { p.removeAll() }; return p }) {
                mdb_txn_abort(txn)
            }
            // A clean close makes `sync: false` commits durable too (their meta page was not
            // synced). Best effort: close cannot report an error from here.
            if hasUnsyncedCommits { _ = mdb_env_sync(env, 1) }
            mdb_env_close(env)
            self.env = nil
        }
    }

    // MARK: Stats

    struct Numbers {
        var info = MDB_envinfo()
        var envStat = MDB_stat()
        var mainStat = MDB_stat()
        var freeStat = MDB_stat()
    }

    func numbers() throws -> Numbers {
        try withReadTransaction(operation: "stats") { txn, dbi in
            var n = Numbers()
            let env = mdb_txn_env(txn)
            mdb_env_info(env, &n.info)
            mdb_env_stat(env, &n.envStat)
            var rc = mdb_stat(txn, dbi, &n.mainStat)
            guard rc == 0 else { throw LMDBErrors.error(rc, path: path, operation: "stats", context: "mdb_stat") }
            rc = mdb_stat(txn, 0, &n.freeStat)  // FREE_DBI
            guard rc == 0 else { throw LMDBErrors.error(rc, path: path, operation: "stats", context: "mdb_stat(free)") }
            return n
        }
    }
}

extension WriteBatch.Operation {
    var isPut: Bool {
        if case .put = self { return true }
        return false
    }
}

/// The read transaction of one view. `end()` may come from the view's deinit or from the
/// environment's shutdown, whichever is first; the mutex makes exactly one of them abort it.
final class LMDBReadTransaction: @unchecked Sendable {
    private let mutex = EngineMutex()
    private var txn: OpaquePointer?

    init(_ txn: OpaquePointer) { self.txn = txn }

    /// The transaction, or nil when already ended.
    func current() -> OpaquePointer? { mutex.withLock { txn } }

    func end() {
        mutex.withLock {
            if let txn { mdb_txn_abort(txn) }
            txn = nil
        }
    }
}
