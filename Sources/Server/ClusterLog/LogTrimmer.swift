import Dispatch
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// This member's store as a snapshot source (implemented by rusd with its engine and etcd's
/// snapshot writer; ClusterLog knows only PostgreSQL).
public protocol LocalStoreSnapshots: Sendable {
    /// Writes a consistent snapshot of the local store in etcd's snapshot format (bbolt +
    /// SHA-256 trailer): first `begin(index, revision, totalBytes)` with the log index and the
    /// revision the snapshot covers (taken from the same read view as the bytes), then the
    /// bytes in order through `emit`, in chunks of about `chunkBytes`. Synchronous and slow
    /// (called on a thread of its own); an error thrown by `begin` or `emit` stops the snapshot
    /// and is rethrown.
    func writeSnapshot(chunkBytes: Int, begin: @escaping (_ index: UInt64, _ revision: Int64, _ bytes: Int) throws -> Void,
                       emit: @escaping (_ chunk: [UInt8]) throws -> Void) throws
}

/// When the cluster snapshots its store and how much log it keeps (docs/cluster.md).
public struct SnapshotPolicy: Sendable {
    /// Applied entries since the newest snapshot that make the leader take the next one
    /// (`--snapshot-count`, etcd's default 100,000).
    public var snapshotCount: UInt64
    /// Entries kept below the newest snapshot for members that are behind, so that they need
    /// no snapshot (`--experimental-snapshot-catchup-entries`, etcd's 5,000).
    public var catchUpEntries: UInt64

    public init(snapshotCount: UInt64 = 100_000, catchUpEntries: UInt64 = 5_000) {
        self.snapshotCount = max(1, snapshotCount)
        self.catchUpEntries = catchUpEntries
    }
}

/// The leader's (lease holder's) log maintenance: once `snapshotCount` entries were applied
/// since the newest snapshot in PostgreSQL, it writes a snapshot of its store there
/// (`PostgresSnapshots`, one transaction, streamed chunk by chunk: the store is never in
/// memory), then trims `rusd_log` (`PostgresSnapshots.trim`). Other members only tail. Runs
/// until the log stops.
public final class LogTrimmer: Sendable {
    let log: PostgresLog
    let store: any LocalStoreSnapshots
    let policy: SnapshotPolicy
    let logger: Logger
    private let task = Mutex<Task<Void, Never>?>(nil)

    public init(log: PostgresLog, store: any LocalStoreSnapshots, policy: SnapshotPolicy, logger: Logger) {
        self.log = log
        self.store = store
        self.policy = policy
        self.logger = logger
        task.withLock { $0 = Task { await self.loop() } }
    }

    private func loop() async {
        var connection: PostgresConnection?
        var newest: UInt64?          // the newest snapshot's index (0: none); nil: ask
        var lastTrim = ContinuousClock.now - .seconds(60)
        var trimMoved = false
        var lastError = ""
        let logger = logger
        while !log.stopped {
            await log.pause(.seconds(1))
            guard log.isLeaseHolder.load(ordering: .relaxed), !log.stopped else {
                newest = nil
                continue
            }
            do {
                if newest == nil {
                    newest = try await log.withConnection(&connection, id: 8) { c in
                        try await PostgresSnapshots.newest(on: c, logger: logger)?.index ?? 0
                    }
                }
                let applied = log.applier.appliedIndex, have = newest ?? 0
                if applied > have, applied - have >= policy.snapshotCount {
                    let record = try await upload(&connection)
                    newest = record.index
                    trimMoved = true
                }
                if (newest ?? 0) > 0, trimMoved || ContinuousClock.now - lastTrim >= .seconds(5) {
                    let keep = policy.catchUpEntries
                    let (old, new) = try await log.withConnection(&connection, id: 8) { c in
                        try await PostgresSnapshots.trim(catchUpEntries: keep, on: c, logger: logger)
                    }
                    lastTrim = ContinuousClock.now
                    trimMoved = new > old
                    if trimMoved {
                        logger.info("trimmed the shared log", metadata: ["through": "\(new)", "before": "\(old)"])
                    }
                }
                lastError = ""
            } catch {
                newest = nil
                let text = String(reflecting: error)
                if text != lastError { logger.warning("snapshotting or trimming the shared log failed", metadata: ["error": "\(text)"]) }
                lastError = text
            }
        }
        if let connection { let _: EventLoopFuture<Void> = connection.close() }
    }

    /// Writes a snapshot of the local store into PostgreSQL in one transaction (see
    /// `PostgresSnapshots`) and deletes all but the two newest.
    private func upload(_ connection: inout PostgresConnection?) async throws -> PostgresSnapshots.Record {
        try await log.withConnection(&connection, id: 8) { _ in }   // (re)connects as the log's other calls do
        guard let c = connection else { throw SharedLogError.unreachable(log.url.description, "no connection") }
        let started = ContinuousClock.now
        do {
            let logger = logger
            try await withDeadline(PostgresLog.callLimit) { _ = try await c.query("BEGIN", logger: logger) }
            let uploader = ChunkUploader(connection: c, id: Int64.random(in: 1 ... Int64.max), member: log.name,
                                         logger: logger, stopped: { [log] in log.stopped })
            let store = store
            let written: Result<Void, any Error> = await withCheckedContinuation { done in
                DispatchQueue(label: "rusd.snapshot-upload").async {
                    done.resume(returning: Result {
                        try store.writeSnapshot(chunkBytes: PostgresSnapshots.chunkBytes,
                                                begin: { try uploader.begin(index: $0, revision: $1, bytes: $2) },
                                                emit: { try uploader.emit($0) })
                    })
                }
            }
            try written.get()
            guard let record = uploader.record else { throw SharedLogError.unreachable(log.url.description, "the snapshot wrote nothing") }
            try await withDeadline(PostgresLog.callLimit) {
                try await c.query("UPDATE rusd_snapshots SET chunks = \(Int32(clamping: record.chunks)) WHERE id = \(record.id)",
                                  logger: logger)
                try await c.query("""
                    DELETE FROM rusd_snapshots WHERE id NOT IN (SELECT id FROM rusd_snapshots ORDER BY idx DESC, created DESC LIMIT 2)
                    """, logger: logger)
                try await c.query("COMMIT", logger: logger)
            }
            logger.info("wrote a snapshot of this member's store into the shared log", metadata: [
                "index": "\(record.index)", "revision": "\(record.revision)", "bytes": "\(record.bytes)",
                "chunks": "\(record.chunks)", "took": "\(ContinuousClock.now - started)"])
            return record
        } catch {
            // The transaction (if any) dies with the connection: nothing of the snapshot stays.
            connection = nil
            let _: EventLoopFuture<Void> = c.close()
            throw error
        }
    }
}

/// Inserts a snapshot's row and chunks from the snapshot thread, waiting for each statement
/// (so at most one chunk is in memory besides the writer's own).
private final class ChunkUploader: Sendable {
    struct State {
        var record: PostgresSnapshots.Record?
        var written = 0
    }
    let connection: PostgresConnection
    let id: Int64
    let member: String
    let logger: Logger
    let stopped: @Sendable () -> Bool
    private let state = Mutex(State())

    init(connection: PostgresConnection, id: Int64, member: String, logger: Logger, stopped: @escaping @Sendable () -> Bool) {
        self.connection = connection
        self.id = id
        self.member = member
        self.logger = logger
        self.stopped = stopped
    }

    /// The complete snapshot's record once every chunk was written.
    var record: PostgresSnapshots.Record? { state.withLock { $0.record } }

    func begin(index: UInt64, revision: Int64, bytes: Int) throws {
        let c = connection, logger = logger, id = id, member = member
        let idx = Int64(clamping: index), length = Int64(bytes)
        try blocking {
            try await c.query("""
                INSERT INTO rusd_snapshots (id, idx, revision, bytes, chunks, member)
                VALUES (\(id), \(idx), \(revision), \(length), 0, \(member))
                """, logger: logger)
        }
        state.withLock { $0.record = PostgresSnapshots.Record(id: id, index: index, revision: revision, bytes: bytes, chunks: 0) }
    }

    func emit(_ chunk: [UInt8]) throws {
        if stopped() { throw EtcdStopped() }
        guard let seq = state.withLock({ $0.record?.chunks }) else { throw EtcdStopped() }
        let c = connection, logger = logger, id = id, buffer = ByteBuffer(bytes: chunk), number = Int32(clamping: seq)
        try blocking {
            try await c.query("INSERT INTO rusd_snapshot_chunks (snapshot, seq, data) VALUES (\(id), \(number), \(buffer))",
                              logger: logger)
        }
        state.withLock { $0.record?.chunks += 1 }
    }

    struct EtcdStopped: Error, CustomStringConvertible {
        var description: String { "the member is stopping" }
    }

    /// Runs `operation` (one statement, within the call limit) and waits for it: only ever
    /// called on the snapshot thread, never on a thread of the concurrency pool.
    private func blocking(_ operation: @escaping @Sendable () async throws -> Void) throws {
        let result = Mutex<Result<Void, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let r: Result<Void, any Error>
            do { try await withDeadline(PostgresLog.callLimit, operation); r = .success(()) } catch { r = .failure(error) }
            result.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        try result.withLock { $0 ?? .failure(DeadlineExceeded()) }.get()
    }
}
