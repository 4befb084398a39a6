import Logging
import NIOCore
import PostgresNIO

/// Snapshots of a member's store kept in PostgreSQL (schema version 3, docs/cluster.md
/// "Snapshots, trimming and catch-up"), and the trim point of `rusd_log`.
///
/// A snapshot is an etcd-format snapshot file (bbolt + SHA-256 trailer, as `etcdctl snapshot
/// save` writes) cut into chunks of about `chunkBytes`: one `rusd_snapshots` row (the log index
/// and revision it covers, its length and chunk count) and `rusd_snapshot_chunks` rows 0, 1, …
/// It is written in ONE transaction with the row first, so a reader sees a snapshot complete
/// or not at all; the same transaction deletes every snapshot but the two newest (a member
/// still downloading the previous one can finish). Nothing read back is trusted: lengths,
/// counts and indexes are range-checked here, the bytes by the restore's SHA-256 check.
enum PostgresSnapshots {
    /// Chunk size: 1 MiB rows (one round trip each; PostgreSQL stores them out of line).
    static let chunkBytes = 1 << 20

    /// A complete snapshot as recorded.
    struct Record: Sendable, Equatable {
        var id: Int64
        /// Every entry at or below it is in the snapshot.
        var index: UInt64
        var revision: Int64
        var bytes: Int
        var chunks: Int
    }

    /// The newest snapshot (highest index), nil when there is none.
    static func newest(on c: PostgresConnection, logger: Logger) async throws -> Record? {
        var out: Record?
        for try await row in try await c.query("""
            SELECT id, idx, revision, bytes, chunks FROM rusd_snapshots ORDER BY idx DESC, created DESC LIMIT 1
            """, logger: logger) {
            let (id, idx, revision, bytes, chunks) = try row.decode((Int64, Int64, Int64, Int64, Int32).self)
            guard idx >= 1, bytes >= 0, bytes <= Int64(Int.max), chunks >= 0 else {
                throw SharedLogError.corruptEntry(index: idx, reason: "rusd_snapshots row \(id) has idx \(idx), bytes \(bytes), chunks \(chunks)")
            }
            out = Record(id: id, index: UInt64(idx), revision: revision, bytes: Int(bytes), chunks: Int(chunks))
        }
        return out
    }

    /// `rusd_trimmed.through`: every entry at or below it may be gone from `rusd_log`.
    static func trimmedThrough(on c: PostgresConnection, logger: Logger) async throws -> UInt64 {
        var through: Int64 = 1
        for try await row in try await c.query("SELECT through FROM rusd_trimmed WHERE id = 1", logger: logger) {
            through = try row.decode(Int64.self)
        }
        return UInt64(max(through, 1))
    }

    /// Streams snapshot `record`'s bytes to `sink`, chunk by chunk, checking that every chunk is
    /// there and that the lengths add up. Throws `SnapshotGone` when the snapshot was deleted
    /// meanwhile (a newer one replaced it): the caller starts again with the newest.
    static func download(_ record: Record, on c: PostgresConnection, logger: Logger,
                         sink: @Sendable ([UInt8]) throws -> Void) async throws {
        var total = 0
        for seq in 0 ..< record.chunks {
            let id = record.id, number = Int32(clamping: seq)
            let chunk: ByteBuffer? = try await withDeadline(PostgresLog.callLimit) {
                var chunk: ByteBuffer?
                for try await row in try await c.query("""
                    SELECT data FROM rusd_snapshot_chunks WHERE snapshot = \(id) AND seq = \(number)
                    """, logger: logger) {
                    chunk = try row.decode(ByteBuffer.self)
                }
                return chunk
            }
            guard let chunk else { throw SnapshotGone(id: record.id) }
            total += chunk.readableBytes
            guard total <= record.bytes else { break }
            try sink(Array(chunk.readableBytesView))
        }
        guard total == record.bytes else {
            throw SharedLogError.corruptEntry(index: Int64(clamping: record.index),
                                              reason: "snapshot \(record.id) holds \(total) bytes in \(record.chunks) chunks, its row says \(record.bytes)")
        }
    }

    /// The snapshot a reader wanted was deleted while it read it.
    struct SnapshotGone: Error, CustomStringConvertible {
        var id: Int64
        var description: String { "snapshot \(id) was replaced by a newer one while it was read" }
    }

    /// Most entries one trim deletes (a longer backlog goes in several statements, each well
    /// within the call limit).
    static let trimStep: Int64 = 50_000

    /// Deletes the log entries no member needs any more (docs/cluster.md has the rule):
    /// through = min(newest snapshot's index, max(min applied of the members, newest − catchUp)),
    /// at most `trimStep` past the old trim point, never moving back. One statement: the new trim
    /// point and the deletion commit together, so a tailer sees both or neither. Returns the old
    /// and the new trim point.
    static func trim(catchUpEntries: UInt64, on c: PostgresConnection, logger: Logger) async throws -> (old: UInt64, new: UInt64) {
        let keep = Int64(clamping: catchUpEntries)
        var out: (Int64, Int64) = (1, 1)
        for try await row in try await c.query("""
            WITH s AS (SELECT max(idx) AS idx FROM rusd_snapshots),
            m AS (SELECT min(applied) AS applied FROM rusd_members),
            o AS (SELECT through FROM rusd_trimmed WHERE id = 1),
            t AS (SELECT LEAST(s.idx, GREATEST(COALESCE(m.applied, s.idx), s.idx - \(keep)), o.through + \(trimStep)) AS through
                  FROM s, m, o WHERE s.idx IS NOT NULL),
            u AS (UPDATE rusd_trimmed SET through = t.through FROM t WHERE id = 1 AND t.through > rusd_trimmed.through
                  RETURNING rusd_trimmed.through),
            d AS (DELETE FROM rusd_log WHERE idx <= (SELECT through FROM u) RETURNING 1)
            SELECT (SELECT through FROM o), COALESCE((SELECT through FROM u), (SELECT through FROM o)), (SELECT count(*) FROM d)
            """, logger: logger) {
            let (old, new, _) = try row.decode((Int64, Int64, Int64).self)
            out = (old, new)
        }
        return (UInt64(max(out.0, 1)), UInt64(max(out.1, 1)))
    }
}
