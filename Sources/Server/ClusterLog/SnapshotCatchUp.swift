import Dispatch
import Logging
import PostgresNIO
import Synchronization

/// What a starting member asks the shared log before it opens its store for serving: how far
/// the log is trimmed and which snapshot covers the trimmed part, and that snapshot's bytes
/// (docs/cluster.md "Snapshots, trimming and catch-up"). Blocking calls, for startup only.
public enum SnapshotCatchUp {
    /// A snapshot kept in PostgreSQL.
    public struct Snapshot: Sendable, Equatable {
        /// It holds every entry up to this log index (its store's applied index may be higher).
        public var index: UInt64
        public var revision: Int64
        public var bytes: Int
    }

    /// Where the log starts and what can replace the trimmed part.
    public struct Position: Sendable {
        /// Every entry at or below it may be gone: a store that applied less needs a snapshot.
        public var trimmedThrough: UInt64
        /// The newest snapshot, nil when none was taken yet.
        public var newest: Snapshot?
    }

    /// The trim point and the newest snapshot.
    public static func position(_ url: SharedLogURL, logger: Logger) throws -> Position {
        try blocking(url, logger: logger) { c in
            let through = try await PostgresSnapshots.trimmedThrough(on: c, logger: logger)
            let newest = try await PostgresSnapshots.newest(on: c, logger: logger)
            return Position(trimmedThrough: through,
                            newest: newest.map { Snapshot(index: $0.index, revision: $0.revision, bytes: $0.bytes) })
        }
    }

    /// Streams the newest snapshot's bytes to `sink`: `restart()` first, then every chunk in
    /// order. A snapshot replaced while it is read is given up and the (new) newest read from
    /// `restart()` again, up to 5 times. Returns the snapshot read; throws when there is none.
    public static func downloadNewest(_ url: SharedLogURL, logger: Logger, restart: @escaping @Sendable () throws -> Void,
                                      sink: @escaping @Sendable ([UInt8]) throws -> Void) throws -> Snapshot {
        try blocking(url, logger: logger, limit: nil) { c in
            var attempt = 0
            while true {
                attempt += 1
                guard let record = try await withDeadline(PostgresLog.callLimit, { try await PostgresSnapshots.newest(on: c, logger: logger) }) else {
                    throw SharedLogError.unreachable(url.description, "the shared log holds no snapshot")
                }
                try restart()
                do {
                    try await PostgresSnapshots.download(record, on: c, logger: logger, sink: sink)
                    return Snapshot(index: record.index, revision: record.revision, bytes: record.bytes)
                } catch let gone as PostgresSnapshots.SnapshotGone where attempt < 5 {
                    logger.notice("the snapshot being read was replaced; reading the newest", metadata: ["error": "\(gone)"])
                }
            }
        }
    }

    /// Runs `body` on a fresh connection to the writable server, waiting for it (startup only).
    /// `limit`: the most the whole call may take (nil: no limit, for a download of any size).
    private static func blocking<T: Sendable>(_ url: SharedLogURL, logger: Logger, limit: Duration? = PostgresLog.callLimit,
                                              _ body: @escaping @Sendable (PostgresConnection) async throws -> T) throws -> T {
        let result = Mutex<Result<T, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let r: Result<T, any Error>
            do {
                let c = try await withDeadline(url.connectLimit) { try await url.connectWritable(id: 9, logger: logger) }
                do {
                    if let limit {
                        r = .success(try await withDeadline(limit) { try await body(c) })
                    } else {
                        r = .success(try await body(c))
                    }
                } catch {
                    r = .failure(error)
                }
                try? await c.close()
            } catch {
                r = .failure(SharedLogError.unreachable(url.description, SharedLogStart.describe(error)))
            }
            result.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        return try result.withLock { $0 ?? .failure(DeadlineExceeded()) }.get()
    }
}
