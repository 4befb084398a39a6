#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EngineAPI
import Synchronization

/// `--engine=lsm`: a log-structured merge tree written in Swift.
///
/// Layout of the directory:
///   NNNNNN.log     write-ahead log of the memtable being filled (one per memtable)
///   NNNNNN.sst     sorted tables (see TableFormat.swift)
///   MANIFEST-NNNN  log of version edits (files per level, next file number, last sequence)
///   CURRENT        name of the live manifest, replaced atomically (temp file + rename)
///   LOCK           flock'ed while open: one process at a time
///
/// Writes: a write leader takes every queued batch (group commit), appends one WAL record per
/// batch in a single write, fdatasyncs once if any of them asked for `sync`, inserts into the
/// memtable and then publishes the new last sequence number. Readers see exactly the published
/// sequence numbers, so a batch is visible all at once or not at all.
///
/// A full memtable becomes immutable and a background thread writes it to a table; compaction
/// runs on the same thread (see Compaction.swift for the leveled policy and why).
///
/// Lifetime: call `close()`. The background thread holds the engine until then (an engine
/// dropped without `close()` keeps its thread and files open).
///
/// Options used: `createIfMissing`, `writeBufferBytes` (memtable size), `maxSizeBytes` (writes
/// fail with `.full` past it). Ignored: `cacheBytes` (tables are memory-mapped and read in place:
/// the kernel's page cache is the cache, as for LMDB) and `paranoidChecks` (every block is
/// CRC-checked on its first read after open, so it changes nothing).
public final class LSMEngine: StorageEngine, @unchecked Sendable {
    /// The registry name, `--engine=lsm`.
    public static let engineName = "lsm"
    public let name = LSMEngine.engineName
    public let directory: String
    let options: EngineOptions

    // Everything below is guarded by `mu`, except what the comments say.
    let mu = Lock()
    let writersCond = Condition()
    let bgCond = Condition()
    let bgDoneCond = Condition()

    var mem: Memtable
    var imm: Memtable?
    var log: LogWriter
    var manifest: LogWriter
    var current: Version
    var nextFileNumber: UInt64
    var lastSequence: UInt64
    var writers: [Writer] = []
    var snapshots: [UInt64: Int] = [:]
    var bgError: EngineError?
    var closed = false
    /// Mirrors `closed` (set under `mu`), for lock-free checks by views.
    let closedFlag = Atomic<Bool>(false)
    var shuttingDown = false
    var bgExited = false
    /// The user keys the inputs of the compaction job in progress span (nil: none runs); a
    /// flush between its output files goes where `Flush.pickLevel` says for it.
    var runningCompaction: (smallest: [UInt8], largest: [UInt8])?
    var manualRequested = 0
    var manualDone = 0
    var compactPointers: [[UInt8]] = Array(repeating: [], count: Version.levelCount)
    var counters = Counters()
    private var lockFD: Int32

    /// Scratch buffer of the write leader (only the current leader touches it).
    private var walBuffer: [UInt8] = []

    struct Counters {
        var walBytes: UInt64 = 0
        var flushBytes: UInt64 = 0
        var compactionBytes: UInt64 = 0
        var compactionReadBytes: UInt64 = 0
        var manifestBytes: UInt64 = 0
        var flushes = 0
        var compactions = 0
        var trivialMoves = 0
        var flushesToBottom = 0
        var stallSeconds = 0.0
        var stalls = 0
        var slowdowns = 0
        var userBytes: UInt64 = 0
    }

    /// A queued `write` call.
    final class Writer {
        let batch: WriteBatch
        let sync: Bool
        /// Asks the leader to switch to a fresh memtable (reclaimSpace).
        let switchMemtable: Bool
        var done = false
        var error: EngineError?
        init(batch: WriteBatch, sync: Bool, switchMemtable: Bool = false) {
            self.batch = batch
            self.sync = sync
            self.switchMemtable = switchMemtable
        }
    }

    // Tuning (LevelDB's values for the level-0 triggers).
    static let level0CompactionTrigger = 4
    static let level0SlowdownTrigger = 8
    static let level0StopTrigger = 12
    static let maxGroupBytes = 1 << 20

    var writeBufferBytes: Int { max(options.writeBufferBytes, 4 << 10) }
    var targetFileBytes: Int { min(max(options.writeBufferBytes, 64 << 10), 8 << 20) }
    var levelBaseBytes: UInt64 { UInt64(max(options.writeBufferBytes * 4, 256 << 10)) }
    var walPreallocation: Int { min(max(options.writeBufferBytes / 4, 64 << 10), 4 << 20) }

    init(directory: String, options: EngineOptions, recovered: Recovery.State, lockFD: Int32) {
        self.directory = directory
        self.options = options
        self.mem = Memtable(logNumber: recovered.log.number)
        self.log = recovered.log
        self.manifest = recovered.manifest
        self.current = recovered.version
        self.nextFileNumber = recovered.nextFileNumber
        self.lastSequence = recovered.lastSequence
        self.lockFD = lockFD
        self.counters.flushBytes = recovered.flushBytes
        self.counters.manifestBytes = recovered.manifest.bytesWritten
    }

    /// Opens (or creates, with `options.createIfMissing`) the store in `directory`, replaying
    /// its write-ahead log. Throws `.notFound`, `.corruption` (naming file and offset), `.io`.
    public static func open(directory: String, options: EngineOptions = EngineOptions()) throws -> LSMEngine {
        let (state, lockFD) = try Recovery.recover(directory: directory, options: options)
        let engine = LSMEngine(directory: directory, options: options, recovered: state, lockFD: lockFD)
        engine.startBackground()
        return engine
    }

    func closedError(_ op: String) -> EngineError {
        EngineError(.closed, engine: "lsm", path: directory, operation: op, message: "engine is closed")
    }

    // MARK: Writes

    public func write(_ batch: WriteBatch, sync: Bool) throws {
        try enqueue(Writer(batch: batch, sync: sync), operation: "write")
    }

    func enqueue(_ w: Writer, operation: String) throws {
        mu.lock()
        if closed {
            mu.unlock()
            throw closedError(operation)
        }
        writers.append(w)
        while !w.done && writers.first !== w { writersCond.wait(mu) }
        if w.done {
            mu.unlock()
            if let e = w.error { throw e }
            return
        }
        // This writer leads a group.
        var group = [w]
        var failure: EngineError? = nil
        do {
            try makeRoomForWrite(force: w.switchMemtable)
        } catch let e as EngineError {
            failure = e
        } catch {
            failure = EngineError(.io, engine: "lsm", path: directory, operation: operation, message: "\(error)")
        }
        if failure == nil && !w.switchMemtable {
            var bytes = w.batch.byteCount
            var sync = w.sync
            for other in writers.dropFirst() {
                if other.switchMemtable || bytes + other.batch.byteCount > LSMEngine.maxGroupBytes { break }
                group.append(other)
                bytes += other.batch.byteCount
                sync = sync || other.sync
            }
            if let limit = options.maxSizeBytes,
               current.totalBytes + UInt64(log.offset) + UInt64(mem.approximateBytes) + UInt64(bytes) > limit {
                failure = EngineError(.full, engine: "lsm", path: directory, operation: operation,
                                      message: "store would exceed maxSizeBytes (\(limit))")
            } else {
                failure = commit(group, sync: sync)
            }
        }
        for member in group {
            member.done = true
            member.error = failure
        }
        writers.removeFirst(group.count)
        writersCond.broadcast()
        mu.unlock()
        if let e = failure { throw e }
    }

    /// Writes the group to the WAL and the memtable. Called by the leader with `mu` held;
    /// releases it during I/O. Returns the failure, if any.
    private func commit(_ group: [Writer], sync: Bool) -> EngineError? {
        let first = lastSequence + 1
        let log = self.log
        let mem = self.mem
        mu.unlock()
        var seq = first
        walBuffer.removeAll(keepingCapacity: true)
        var userBytes: UInt64 = 0
        for m in group {
            WriteBatchCoding.appendRecord(m.batch, sequence: seq, to: &walBuffer)
            seq += UInt64(m.batch.count)
            userBytes += UInt64(m.batch.byteCount)
        }
        var failure: EngineError? = nil
        do {
            try log.append(walBuffer)
            if sync { try log.sync() }
        } catch let e as EngineError {
            failure = e
        } catch {
            failure = EngineError(.io, engine: "lsm", path: log.path, operation: "write", message: "\(error)")
        }
        if failure == nil {
            var s = first
            for m in group {
                for op in m.batch.operations {
                    switch op {
                    case .put(let key, let value): mem.add(sequence: s, kind: .value, key: key, value: value)
                    case .delete(let key): mem.add(sequence: s, kind: .deletion, key: key, value: [])
                    }
                    s += 1
                }
            }
        }
        mu.lock()
        if let f = failure {
            // A failed WAL write leaves the log in an unknown state: refuse further writes.
            if bgError == nil { bgError = f }
            return f
        }
        lastSequence = seq - 1
        counters.walBytes += UInt64(walBuffer.count)
        counters.userBytes += userBytes
        return nil
    }

    /// Makes sure the memtable has room, switching to a new memtable and log when it is full
    /// and stalling (counted) while the background thread is behind. `mu` held.
    private func makeRoomForWrite(force: Bool) throws {
        var allowDelay = !force
        var force = force
        while true {
            if let e = bgError { throw e }
            let level0 = current.levels[0].count
            if allowDelay && level0 >= LSMEngine.level0SlowdownTrigger {
                // Slow each write by 1 ms rather than stopping one for seconds.
                let t = monotonicSeconds()
                mu.unlock()
                usleep(1000)
                mu.lock()
                counters.stallSeconds += monotonicSeconds() - t
                counters.slowdowns += 1
                allowDelay = false
                continue
            }
            if !force && mem.approximateBytes < writeBufferBytes { return }
            if force && mem.isEmpty { return }
            if imm != nil || level0 >= LSMEngine.level0StopTrigger {
                let t = monotonicSeconds()
                counters.stalls += 1
                bgCond.signal()
                bgDoneCond.wait(mu, seconds: 1)
                counters.stallSeconds += monotonicSeconds() - t
                continue
            }
            let number = nextFileNumber
            nextFileNumber += 1
            let newLog = try LogWriter(path: FileNames.log(directory, number), number: number,
                                       preallocate: walPreallocation)
            // The old log must be complete on disk before records land in the new one, so that
            // recovery never sees a gap followed by later writes.
            try log.sync()
            try FileSystem.syncDirectory(directory)
            log = newLog
            imm = mem
            mem = Memtable(logNumber: number)
            force = false
            bgCond.signal()
        }
    }

    // MARK: Reads

    struct Snapshot {
        var mem: Memtable
        var imm: Memtable?
        var version: Version
        var sequence: UInt64
    }

    func snapshot(_ operation: String) throws -> Snapshot {
        mu.lock()
        defer { mu.unlock() }
        if closed { throw closedError(operation) }
        return Snapshot(mem: mem, imm: imm, version: current, sequence: lastSequence)
    }

    /// The value of `key` in `s`. `cursor` is scratch space for the table lookup (a view passes
    /// its own; it is used by one thread at a time). The internal key lives on the stack.
    func get(_ key: [UInt8], in s: Snapshot, cursor: BlockCursor) throws -> [UInt8]? {
        try withUnsafeTemporaryAllocation(byteCount: key.count + 8, alignment: 8) { buffer in
            key.withUnsafeBytes { buffer.copyMemory(from: $0) }
            buffer.storeBytes(of: packTrailer(s.sequence, .value).littleEndian, toByteOffset: key.count, as: UInt64.self)
            let target = UnsafeRawBufferPointer(buffer)
            switch s.mem.get(internalKey: target) {
            case .found(let v): return v
            case .deleted: return nil
            case .notFound: break
            }
            if let imm = s.imm {
                switch imm.get(internalKey: target) {
                case .found(let v): return v
                case .deleted: return nil
                case .notFound: break
                }
            }
            if case .found(let v) = try s.version.get(target, cursor: cursor) { return v }
            return nil
        }
    }

    public func get(_ key: [UInt8]) throws -> [UInt8]? {
        try get(key, in: snapshot("get"), cursor: BlockCursor())
    }

    public func readView() throws -> any ReadView {
        mu.lock()
        defer { mu.unlock() }
        if closed { throw closedError("readView") }
        let s = Snapshot(mem: mem, imm: imm, version: current, sequence: lastSequence)
        snapshots[s.sequence, default: 0] += 1
        return LSMReadView(engine: self, snapshot: s)
    }

    func releaseSnapshot(_ sequence: UInt64) {
        mu.withLock {
            if let n = snapshots[sequence] {
                if n <= 1 { snapshots[sequence] = nil } else { snapshots[sequence] = n - 1 }
            }
        }
    }

    /// Whether `close()` has begun; read without `mu` so that view reads take no engine lock.
    var isClosed: Bool { closedFlag.load(ordering: .acquiring) }

    // MARK: Maintenance

    /// Full compaction: flushes the memtable, then merges every table into the bottom level,
    /// dropping overwritten versions and tombstones no view needs. Reads and writes continue.
    public func reclaimSpace() throws {
        try enqueue(Writer(batch: WriteBatch(), sync: false, switchMemtable: true), operation: "reclaimSpace")
        mu.lock()
        defer { mu.unlock() }
        if closed { throw closedError("reclaimSpace") }
        manualRequested += 1
        let ticket = manualRequested
        bgCond.signal()
        while manualDone < ticket && bgError == nil && !shuttingDown {
            bgDoneCond.wait(mu)
        }
        if let e = bgError { throw e }
        if manualDone < ticket { throw closedError("reclaimSpace") }
    }

    public func stats() throws -> EngineStats {
        mu.lock()
        if closed {
            mu.unlock()
            throw closedError("stats")
        }
        let v = current
        let c = counters
        let memBytes = UInt64(mem.approximateBytes + (imm?.approximateBytes ?? 0))
        let seq = lastSequence
        let views = snapshots.values.reduce(0, +)
        mu.unlock()
        var disk: UInt64 = 0
        for name in (try? FileSystem.listDirectory(directory)) ?? [] {
            disk += FileSystem.allocatedBytes(directory + "/" + name)
        }
        var d: [String: Double] = [
            "wal.bytes": Double(c.walBytes),
            "flush.bytes": Double(c.flushBytes),
            "compaction.bytes": Double(c.compactionBytes),
            "compaction.read.bytes": Double(c.compactionReadBytes),
            "manifest.bytes": Double(c.manifestBytes),
            "user.bytes": Double(c.userBytes),
            "flushes": Double(c.flushes),
            "flushes.to.bottom": Double(c.flushesToBottom),
            "compactions": Double(c.compactions),
            "trivial.moves": Double(c.trivialMoves),
            "stall.seconds": c.stallSeconds,
            "stalls": Double(c.stalls),
            "slowdowns": Double(c.slowdowns),
            "memtable.bytes": Double(memBytes),
            "sequence": Double(seq),
            "views": Double(views),
        ]
        for l in 0..<Version.levelCount {
            d["level\(l).files"] = Double(v.levels[l].count)
            d["level\(l).bytes"] = Double(v.bytes(level: l))
        }
        let written = c.walBytes + c.flushBytes + c.compactionBytes + c.manifestBytes
        if c.userBytes > 0 { d["write.amplification"] = Double(written) / Double(c.userBytes) }
        let live = v.totalBytes + memBytes
        if live > 0 { d["space.amplification"] = Double(disk) / Double(live) }
        return EngineStats(liveBytes: live, diskBytes: disk, bytesWrittenSinceOpen: written,
                           entryCount: nil, details: d)
    }

    public func close() throws {
        mu.lock()
        if closed {
            mu.unlock()
            return
        }
        closed = true
        closedFlag.store(true, ordering: .releasing)
        while !writers.isEmpty { writersCond.wait(mu) }
        shuttingDown = true
        bgCond.broadcast()
        bgDoneCond.broadcast()
        while !bgExited { bgDoneCond.wait(mu) }
        let log = self.log
        mu.unlock()
        defer {
            Glibc.close(lockFD)
        }
        try log.finish()
    }
}
