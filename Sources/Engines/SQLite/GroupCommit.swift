import EngineAPI

/// Group commit: concurrent `write` calls queue their batches; whichever caller finds no commit
/// in progress becomes the leader, takes the queued batches (in arrival order, up to
/// `maxGroupBytes`) and commits them together (one transaction, one WAL fsync); the others wait
/// for the leader's verdict on their batch. Batches are applied in queue order, which is the
/// order in which `submit` calls took the queue's mutex.
final class GroupCommitQueue: @unchecked Sendable {
    /// One queued batch and, once the leader is done with it, its outcome.
    final class Ticket: @unchecked Sendable {
        let batch: WriteBatch
        let sync: Bool
        /// Set by the leader before `done`; read by the owner after seeing `done` under the mutex.
        var failure: (any Error)?
        fileprivate var done = false

        init(_ batch: WriteBatch, sync: Bool) {
            self.batch = batch
            self.sync = sync
        }
    }

    /// A group stops growing past this many key and value bytes (it always takes one batch).
    static let maxGroupBytes = 32 << 20

    private let mutex = EngineMutex()
    private let finished = EngineCondition()
    private var queue: [Ticket] = []
    private var leading = false

    /// Queues `batch` and returns once it is committed (or throws its failure). `commit` runs on
    /// the leader's thread with a group that is never empty; it records each ticket's failure,
    /// if any, and does not throw.
    func submit(_ batch: WriteBatch, sync: Bool, commit: ([Ticket]) -> Void) throws {
        let ticket = Ticket(batch, sync: sync)
        mutex.lock()
        queue.append(ticket)
        while !ticket.done {
            if leading {
                finished.wait(mutex)
                continue
            }
            leading = true
            var bytes = 0
            var count = 0
            while count < queue.count && (count == 0 || bytes + queue[count].batch.byteCount <= Self.maxGroupBytes) {
                bytes += queue[count].batch.byteCount
                count += 1
            }
            let group = Array(queue.prefix(count))
            queue.removeFirst(count)
            mutex.unlock()
            commit(group)
            mutex.lock()
            for member in group { member.done = true }
            leading = false
            finished.broadcast()
        }
        let failure = ticket.failure
        mutex.unlock()
        if let failure { throw failure }
    }
}
