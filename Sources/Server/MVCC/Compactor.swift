import Dispatch
import EngineAPI
import Synchronization

/// The physical half of compaction: deletes the records a compaction dropped from the index, in
/// batches of `batchLimit` deletions (each its own engine write, so writes of the log interleave
/// and are never stalled behind one huge batch), then durably records the compaction as
/// finished. Compactions run one after another, in the order scheduled.
final class Compactor: Sendable {
    static let batchLimit = 1000

    let engine: any StorageEngine
    private let queue = DispatchQueue(label: "rusd.mvcc.compactor")
    private let finished: Mutex<Int64>
    /// Batches, durations and deleted records (/metrics).
    let stats = CompactionStats()

    init(engine: any StorageEngine, finished: Int64) {
        self.engine = engine
        self.finished = Mutex(finished)
    }

    var finishedRevision: Int64 { finished.withLock { $0 } }

    func schedule(revision: Int64, dropped: [Revision], completion: (@Sendable () -> Void)?) {
        queue.async { [self] in
            let clock = ContinuousClock()
            let started = clock.now
            var deletedAll = true
            var i = 0
            while i < dropped.count {
                var b = WriteBatch()
                let slice = dropped[i ..< min(i + Compactor.batchLimit, dropped.count)]
                for r in slice {
                    b.delete(StorageLayout.revisionKey(r))
                }
                i += Compactor.batchLimit
                // Not synced: the final marker below is; a crash before it redoes the deletion.
                let batchStarted = clock.now
                do { try engine.write(b, sync: false) } catch { deletedAll = false; break }
                stats.dbPauseMilliseconds.observe(CompactionStats.milliseconds(clock.now - batchStarted))
                stats.recordKeysDeleted(slice.count)
            }
            // On an engine failure the marker stays behind: the next start finishes the job.
            if deletedAll {
                var marker = WriteBatch()
                marker.put(MetaKey.finishedCompactRevision.engineKey, MetaKey.encode(UInt64(bitPattern: revision)))
                if (try? engine.write(marker, sync: true)) != nil {
                    finished.withLock { $0 = max($0, revision) }
                }
            }
            stats.totalMilliseconds.observe(CompactionStats.milliseconds(clock.now - started))
            completion?()
        }
    }

    /// Waits until every scheduled compaction is done.
    func drain() {
        queue.sync {}
    }
}
