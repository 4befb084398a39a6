#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import EngineAPI
import Synchronization

/// Cluster mode without local fsync (the default of lmdb and lsm members, docs/cluster.md
/// "Local fsync"): the shared log in PostgreSQL already holds every entry durably, so a
/// member's own engine need not reach stable storage before a write is acknowledged.
///
/// Contract:
/// - A write asked to sync is written with `sync: false`, except the first one at least
///   `interval` after the last synced write, which is written with `sync: true`. When writes
///   stop with an unsynced tail, a timer syncs it one interval later. So at most about one
///   fsync per interval, and the unsynced tail is at most about one interval of groups.
/// - `durableAppliedIndex`: every log entry up to it is on stable storage (the applied-index
///   record of the latest batch written before the last sync). It never goes back. A member
///   reports it, not its applied index, for the log's trimming: an entry may be trimmed only
///   once every member has it durable, because after a machine crash a member resumes from
///   what its engine kept (at least this index) and re-reads the rest from the log.
/// - Nothing here chooses where a restarted member resumes: it resumes from the applied index
///   its engine holds, written in the same atomic batch as the effects of the entries it
///   counts, so no entry is ever applied twice.
/// - Writes not asked to sync pass through unchanged. The wrapped engine must keep a prefix of
///   its batches across a machine crash (lmdb, lsm: a log switch syncs the old log first).
///
/// Thread-safety: synced writes and the timer's sync are serialized by one lock (the applier
/// is the only writer that asks to sync).
public final class LogCheckpointedEngine: StorageEngine {
    public let base: any StorageEngine
    private let intervalNanos: UInt64
    private let now: @Sendable () -> UInt64
    private struct State {
        var lastSyncNanos: UInt64?
        /// The highest applied index written so far (synced or not).
        var written: UInt64
        var durable: UInt64
    }
    private let state: Mutex<State>
    private let timer: SyncTimer?

    /// Syncs what `base` holds now (its applied-index record rewritten with `sync: true`: a
    /// killed process may have left unsynced batches in the page cache) and starts with that
    /// index durable. `runTimer: false` (tests) leaves idle syncs to `syncIfIdle()` calls;
    /// `now` is a monotonic clock in nanoseconds.
    public init(_ base: any StorageEngine, intervalMilliseconds: Int, runTimer: Bool = true,
                now: @escaping @Sendable () -> UInt64 = { LogCheckpointedEngine.monotonicNanos() }) throws {
        self.base = base
        intervalNanos = UInt64(max(1, intervalMilliseconds)) * 1_000_000
        self.now = now
        let synced = try AppliedIndexRecord.syncCurrent(base)
        state = Mutex(State(lastSyncNanos: synced == nil ? nil : now(), written: synced ?? 0, durable: synced ?? 0))
        timer = runTimer ? SyncTimer(intervalMilliseconds: max(1, intervalMilliseconds)) : nil
        timer?.start { [weak self] in try? self?.syncIfIdle() }
    }

    deinit { timer?.cancel() }

    /// The highest log index whose effects are on stable storage here.
    public var durableAppliedIndex: UInt64 { state.withLock { $0.durable } }

    public var name: String { base.name }
    public var directory: String { base.directory }
    public func get(_ key: [UInt8]) throws -> [UInt8]? { try base.get(key) }
    public func readView() throws -> any ReadView { try base.readView() }
    public func reclaimSpace() throws { try base.reclaimSpace() }
    public func stats() throws -> EngineStats { try base.stats() }
    public func close() throws {
        timer?.cancel()
        try base.close()
    }

    public func write(_ batch: WriteBatch, sync: Bool) throws {
        guard sync else { return try base.write(batch, sync: false) }
        try state.withLock { s in
            let t = now()
            let due = s.lastSyncNanos.map { t &- $0 >= intervalNanos } ?? true
            try base.write(batch, sync: due)
            if let index = AppliedIndexRecord.index(in: batch), index > s.written { s.written = index }
            if due {
                // A synced write makes every batch written before it durable too.
                s.lastSyncNanos = t
                s.durable = max(s.durable, s.written)
            }
        }
    }

    /// When batches were written unsynced and no sync happened for an interval: rewrites the
    /// applied-index record (its current value: every synced write holds the lock, so the
    /// record read here is the latest) with `sync: true`.
    public func syncIfIdle() throws {
        try state.withLock { s in
            let t = now()
            guard s.written > s.durable, s.lastSyncNanos.map({ t &- $0 >= intervalNanos }) ?? true else { return }
            if let index = try AppliedIndexRecord.syncCurrent(base) {
                s.lastSyncNanos = t
                s.durable = max(s.durable, min(index, s.written))
            }
        }
    }

    public static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}

/// A repeating dispatch timer (Dispatch sources are thread-safe; this box only holds one).
private final class SyncTimer: @unchecked Sendable {
    private let source: DispatchSourceTimer

    init(intervalMilliseconds: Int) {
        source = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "rusd.local-sync"))
        source.schedule(deadline: .now() + .milliseconds(intervalMilliseconds), repeating: .milliseconds(intervalMilliseconds))
    }

    func start(_ handler: @escaping @Sendable () -> Void) {
        source.setEventHandler(handler: handler)
        source.resume()
    }

    func cancel() { source.cancel() }
}
