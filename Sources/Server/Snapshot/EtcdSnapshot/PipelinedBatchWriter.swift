import Dispatch
import EngineAPI
import Synchronization

/// Writes batches into an engine on a thread of its own, so that the caller can decode the next
/// batch while the engine writes the previous one (a restore then uses two cores, as etcd's
/// does). Batches are written in submission order, unsynced; `finish` writes the last batch
/// with `sync: true` after every earlier one, which makes all of them durable.
///
/// Contract: one submitting thread. At most `depth` batches wait or are being written, so memory
/// stays bounded by `depth` batches. The first write error stops later writes and is thrown by the
/// next `submit` or by `finish`. Call `drain()` before giving up on the engine (on any error
/// path), so that no write is still running when the caller discards it.
final class PipelinedBatchWriter: Sendable {
    private let engine: any StorageEngine
    private let queue = DispatchQueue(label: "rusd.snapshot.restore-writer")
    private let slots: DispatchSemaphore
    private let failure = Mutex<(any Error)?>(nil)

    init(engine: any StorageEngine, depth: Int = 2) {
        self.engine = engine
        self.slots = DispatchSemaphore(value: max(1, depth))
    }

    /// Queues `batch`; blocks while `depth` batches are already queued. Throws the first error
    /// of an earlier write.
    func submit(_ batch: WriteBatch) throws {
        if let error = failure.withLock({ $0 }) { throw error }
        slots.wait()
        queue.async { [self] in
            defer { slots.signal() }
            guard failure.withLock({ $0 == nil }) else { return }
            do { try engine.write(batch, sync: false) } catch {
                failure.withLock { if $0 == nil { $0 = error } }
            }
        }
    }

    /// Waits until every queued batch has been written (or skipped after an error).
    func drain() { queue.sync {} }

    /// Writes `last` synced after every queued batch; throws the first error of any of them.
    func finish(last: WriteBatch) throws {
        drain()
        if let error = failure.withLock({ $0 }) { throw error }
        try engine.write(last, sync: true)
    }
}
