import NIOCore
import Synchronization

/// Watch delivery on one event loop, yielding to the loop's other work.
///
/// Every Watch stream of a connection writes its responses on the connection's event loop. If
/// each stream scheduled its own task per commit, a commit watched by a thousand streams would
/// put a thousand tasks in front of the unary responses (a Put's answer) queued after them.
/// Instead the streams of one loop queue their delivery work here, and one task at a time runs
/// it for at most `slice` before it re-schedules itself behind whatever the loop queued
/// meanwhile. Requests stay responsive under a heavy fan-out; delivery that falls behind is
/// merged into fewer, larger responses by the watch sessions' outboxes.
///
/// Thread-safety: `execute` may be called from any thread; work runs on `eventLoop`, serially,
/// in submission order.
final class WatchDeliveryLane: Sendable {
    let eventLoop: any EventLoop
    /// Longest run of delivery work (a slice) before the loop gets to run its other tasks
    /// and I/O.
    static let slice = TimeAmount.microseconds(1000)
    /// Shortest time from the start of one slice to the start of the next. With `slice`, it
    /// caps delivery at half of the loop's time while it is backlogged, so requests (a Put's
    /// answer, the next request's read) keep the other half however many watchers there are;
    /// commits that arrive in between are merged into the responses still queued, so a
    /// backlogged watcher gets fewer, larger responses. An idle lane starts at once.
    static let interval = TimeAmount.milliseconds(5)

    private struct Queue {
        var works: [@Sendable () -> Void] = []
        var head = 0
        var scheduled = false
        /// When the last slice started.
        var lastSlice = NIODeadline.uptimeNanoseconds(0)
    }
    private let queue = Mutex(Queue())

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func execute(_ work: @escaping @Sendable () -> Void) {
        let start = queue.withLock { q -> NIODeadline? in
            q.works.append(work)
            if q.scheduled { return nil }
            q.scheduled = true
            return q.lastSlice + Self.interval
        }
        if let start { schedule(at: start) }
    }

    private func schedule(at start: NIODeadline) {
        if start <= .now() {
            eventLoop.execute { self.run() }
        } else {
            eventLoop.scheduleTask(deadline: start) { self.run() }
        }
    }

    private func run() {
        let now = NIODeadline.now()
        let deadline = now + Self.slice
        queue.withLock { $0.lastSlice = now }
        while true {
            let work = queue.withLock { q -> (@Sendable () -> Void)? in
                if q.head == q.works.count {
                    q.works.removeAll(keepingCapacity: q.works.count <= 4096)
                    q.head = 0
                    q.scheduled = false
                    return nil
                }
                let w = q.works[q.head]
                q.head += 1
                if q.head >= 4096 && q.head * 2 >= q.works.count {
                    q.works.removeFirst(q.head)
                    q.head = 0
                }
                return w
            }
            guard let work else { return }
            work()
            if NIODeadline.now() >= deadline {
                schedule(at: now + Self.interval)
                return
            }
        }
    }
}

/// The delivery lanes of one server, one per event loop (created on first use).
final class WatchDeliveryLanes: Sendable {
    private let lanes = Mutex<[ObjectIdentifier: WatchDeliveryLane]>([:])

    func lane(for eventLoop: any EventLoop) -> WatchDeliveryLane {
        lanes.withLock { lanes in
            let id = ObjectIdentifier(eventLoop)
            if let lane = lanes[id] { return lane }
            let lane = WatchDeliveryLane(eventLoop: eventLoop)
            lanes[id] = lane
            return lane
        }
    }
}
