import Dispatch
import MVCC
import Synchronization

/// The local log and its single applier, with group commit.
///
/// `submit` appends an entry (its index assigned in submission order) to the queue. One applier
/// at a time (a serial dispatch queue) drains everything queued, applies each entry through the
/// state machine (each write gets its own revision; failed compares cost none), writes all of
/// their changes plus the applied index in ONE engine batch with `sync: true`, publishes the
/// result to readers and only then completes the entries. Writes arriving during an fsync form
/// the next group, so concurrent writers share fsyncs.
final class Applier: Sendable {
    private struct Pending {
        var entry: LogEntry
        var size: Int
        var complete: ApplyCompletion
    }

    private struct Queue {
        var pending: [Pending] = []
        var nextIndex: UInt64
        var draining = false
        var stopped = false
    }

    private let machine: StateMachine
    private let maxEntriesPerCommit: Int
    private let completionBatch: @Sendable (() -> Void) -> Void
    /// A group stops growing past this many request bytes (bounds the batch's memory).
    static let maxBytesPerCommit = 64 << 20
    private let queue = DispatchQueue(label: "rusd.applier")
    private let state: Mutex<Queue>
    /// Number of group commits done (for tests and metrics).
    private let groups = Mutex<Int>(0)
    /// Durations of the successful synced engine writes (one per group commit).
    let commitDurations = ValueHistogram.etcdDiskBuckets()
    /// Failed proposals and slow applies (and the server's other counts, see `ServerCounters`).
    let counters = ServerCounters()

    init(machine: StateMachine, firstIndex: UInt64, maxEntriesPerCommit: Int,
         completionBatch: (@Sendable (() -> Void) -> Void)? = nil) {
        self.machine = machine
        self.maxEntriesPerCommit = max(1, maxEntriesPerCommit)
        self.completionBatch = completionBatch ?? { $0() }
        state = Mutex(Queue(nextIndex: firstIndex))
    }

    var groupCommits: Int { groups.withLock { $0 } }

    /// Appends a request to the log. `complete` runs on the applier's thread after the entry is
    /// durable and visible (or failed); it must not block.
    func submit(_ request: ApplyRequest, size: Int = 64, complete: @escaping ApplyCompletion) {
        let start: Bool? = state.withLock { q in
            if q.stopped { return nil }
            q.pending.append(Pending(entry: LogEntry(index: q.nextIndex, request: request), size: size, complete: complete))
            q.nextIndex += 1
            if q.draining { return false }
            q.draining = true
            return true
        }
        guard let start else {
            complete(.failure(.stopped))
            return
        }
        if start { queue.async { self.drain() } }
    }

    /// Appends an entry whose index a shared log already chose (cluster mode; see
    /// `ReplicatedLog`). Only the next index is accepted: returns false, queueing nothing, for
    /// any other (and when stopped, after failing `complete`).
    func submit(index: UInt64, _ request: ApplyRequest, size: Int, complete: @escaping ApplyCompletion) -> Bool {
        enum Outcome { case stopped, wrongIndex, queued, queuedAndStart }
        let outcome: Outcome = state.withLock { q in
            if q.stopped { return .stopped }
            if index != q.nextIndex { return .wrongIndex }
            q.pending.append(Pending(entry: LogEntry(index: index, request: request), size: size, complete: complete))
            q.nextIndex += 1
            if q.draining { return .queued }
            q.draining = true
            return .queuedAndStart
        }
        switch outcome {
        case .stopped:
            complete(.failure(.stopped))
            return false
        case .wrongIndex:
            return false
        case .queued:
            return true
        case .queuedAndStart:
            queue.async { self.drain() }
            return true
        }
    }

    /// Stops accepting entries, applies what was accepted, and returns when all of it is done.
    func stop() {
        state.withLock { $0.stopped = true }
        queue.sync {}
    }

    private func drain() {
        while true {
            let group: [Pending] = state.withLock { q in
                if q.pending.isEmpty {
                    q.draining = false
                    return []
                }
                var n = 0, bytes = 0
                while n < q.pending.count && n < maxEntriesPerCommit && (n == 0 || bytes + q.pending[n].size <= Applier.maxBytesPerCommit) {
                    bytes += q.pending[n].size
                    n += 1
                }
                let g = Array(q.pending.prefix(n))
                q.pending.removeFirst(n)
                return g
            }
            if group.isEmpty { return }
            commit(group)
        }
    }

    private func commit(_ group: [Pending]) {
        var results: [Result<ApplyResponse, EtcdError>?] = []
        results.reserveCapacity(group.count)
        machine.groupFailure = nil
        let clock = ContinuousClock()
        for p in group {
            let started = clock.now
            results.append(machine.apply(p.entry, complete: p.complete))
            counters.recordApply(clock.now - started)
            if machine.groupFailure != nil { break }
        }
        var failure = machine.groupFailure
        if failure == nil {
            do {
                let synced = try machine.writer.commit(appliedIndex: group[group.count - 1].entry.index)
                commitDurations.observe(synced)
            } catch {
                failure = EtcdError(error)
            }
        } else {
            machine.writer.rollback()
        }
        groups.withLock { $0 += 1 }
        if let failure {
            counters.recordFailedProposals(group.count)
            machine.resyncAfterRollback()
            completionBatch {
                for p in group { p.complete(.failure(failure)) }
            }
            return
        }
        completionBatch {
            for (p, r) in zip(group, results) {
                if let r { p.complete(r) }
            }
        }
    }
}
