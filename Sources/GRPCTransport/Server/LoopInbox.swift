import NIOCore
import NIOPosix
import Synchronization

/// Runs tasks handed over from other threads on one event loop, in the order they were posted,
/// batching every task posted before the loop gets to them into ONE loop task.
///
/// A writer thread that completes many calls at once (e.g. the responses of one group commit)
/// wraps them in `LoopInbox.batching { ... }`: each loop then gets one wake-up and one task for
/// all of them, and every response of the batch is written before its connection flushes (one
/// socket write per connection). Outside `batching`, a post from another thread schedules the
/// inbox at once if it is not already scheduled.
/// Thread-safety: `execute` and `batching` may be called from any thread.
public final class LoopInbox: Sendable {
    public let eventLoop: any EventLoop
    private struct State {
        var tasks: [@Sendable () -> Void] = []
        var scheduled = false
    }
    private let state = Mutex(State())

    public init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Runs `task` on the event loop: at once when called there, else with the other tasks
    /// posted before the loop drains the inbox.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop {
            task()
            return
        }
        let schedule = state.withLock { s in
            s.tasks.append(task)
            if s.scheduled { return false }
            s.scheduled = true
            return true
        }
        guard schedule else { return }
        if let scope = LoopInbox.scope.currentValue {
            scope.inboxes.append(self)
        } else {
            eventLoop.execute { self.drain() }
        }
    }

    /// Runs `body`, holding back the loop tasks that `execute` calls made on this thread would
    /// schedule until it returns, then schedules each inbox once. Nests.
    public static func batching(_ body: () -> Void) {
        let outer = scope.currentValue
        let current = BatchScope()
        scope.currentValue = current
        body()
        scope.currentValue = outer
        for inbox in current.inboxes { inbox.eventLoop.execute { inbox.drain() } }
    }

    /// The inboxes a `batching` call on this thread has yet to schedule.
    private final class BatchScope: @unchecked Sendable {  // used by its own thread only
        var inboxes: [LoopInbox] = []
    }
    private static let scope = ThreadSpecificVariable<BatchScope>()

    private func drain() {
        let tasks = state.withLock { s in
            s.scheduled = false
            let taken = s.tasks
            s.tasks = []
            s.tasks.reserveCapacity(taken.count)
            return taken
        }
        for task in tasks { task() }
    }
}

/// One `LoopInbox` per event loop of a group, built once (the table is immutable).
final class LoopInboxes: Sendable {
    private let byLoop: [ObjectIdentifier: LoopInbox]

    init(group: any EventLoopGroup) {
        var table: [ObjectIdentifier: LoopInbox] = [:]
        for loop in group.makeIterator() { table[ObjectIdentifier(loop)] = LoopInbox(eventLoop: loop) }
        byLoop = table
    }

    /// The inbox of `loop` (a fresh one for a loop outside the group: correct, just unshared).
    func inbox(for loop: any EventLoop) -> LoopInbox {
        byLoop[ObjectIdentifier(loop)] ?? LoopInbox(eventLoop: loop)
    }
}
