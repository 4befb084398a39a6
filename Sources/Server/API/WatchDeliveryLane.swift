import NIOCore
import WatchHub
import Synchronization

/// When watch delivery yields to writes (see `WatchDeliveryLane`).
struct WatchDeliveryPolicy: Sendable {
    /// Whether delivery should yield to writes now.
    var writesFirst: @Sendable () -> Bool
    /// A count that grows by one per committed revision: delivery's allowance grows with it.
    var committedRevisions: @Sendable () -> Int64

    /// Writes come first while they queue up (commits of more than one request), for bursts
    /// in which no watcher lags longer than `maxHold` (`WatchHub.writesComeFirst`).
    static func yieldingToWrites(of hub: WatchHub, maxHold: Duration = .seconds(1)) -> WatchDeliveryPolicy {
        WatchDeliveryPolicy(writesFirst: { hub.writesComeFirst(maxHold: maxHold) },
                            committedRevisions: { hub.committedRevisions })
    }
}

/// Watch delivery on one event loop, yielding to the loop's other work and, while writes queue
/// up, to the writes.
///
/// Every Watch stream of a connection writes its responses on the connection's event loop. If
/// each stream scheduled its own task per commit, a commit watched by a thousand streams would
/// put a thousand tasks in front of the unary responses (a Put's answer) queued after them.
/// Instead the streams of one loop queue their delivery work here, and one task at a time runs
/// it for at most `slice`, then re-queues itself behind whatever the loop queued meanwhile.
///
/// Writes first: while the policy says so, the lane sends at most `allowancePerRevision` events
/// per committed revision (a credit of at most `maxCredit`). Ordinary watch traffic, a few
/// events per write (Kubernetes: one per API server watching the resource), never waits for
/// it. A fan-out that multiplies every write a thousandfold (1,000 watchers on one prefix) is
/// held back until the writes let up: the commits that arrive meanwhile are merged into the
/// responses still queued, or caught up from the store (see `WatchSession`), so the lagging
/// watchers get fewer, larger responses, which costs server and client less per event. The
/// policy bounds how long watchers may lag.
///
/// Thread-safety: `execute` and `charge` may be called from any thread; work runs on
/// `eventLoop`, serially, in submission order.
final class WatchDeliveryLane: Sendable {
    let eventLoop: any EventLoop
    let policy: WatchDeliveryPolicy
    /// Longest run of delivery work before the loop gets to run its other tasks and I/O.
    static let slice = TimeAmount.microseconds(1000)
    /// Events the lane may send per committed revision while writes come first.
    /// Measured with 1,000 watchers on one prefix and 16 writers (rusd-compare watch-fanout,
    /// 2-core VM), puts with / without the watchers: 8 events: 0.73-0.82x; 16: 0.58x; about
    /// 28 (4 KiB): 0.57-0.59x. Every event let through costs the hub a live enqueue per
    /// watcher and the client its decoding, on the cores the writes need. Before, delivery
    /// took up to 1 ms in every 2 ms of the loop: 0.15x.
    static let allowancePerRevision = 8
    /// Most allowance a lane saves up.
    static let maxCredit = 4096
    /// How soon a lane that ran out of allowance looks again.
    static let recheck = TimeAmount.milliseconds(1)

    private struct Queue {
        var works: [@Sendable () -> Void] = []
        var head = 0
        var scheduled = false
        /// Events the lane may still send while writes come first; negative when overdrawn.
        var credit = WatchDeliveryLane.maxCredit
        /// `committedRevisions` when `credit` was last refilled.
        var revisions: Int64 = 0

        mutating func refill(revisions now: Int64) {
            if now > revisions {
                let earned = Int(min(now - revisions, Int64(WatchDeliveryLane.maxCredit))) * WatchDeliveryLane.allowancePerRevision
                credit = min(WatchDeliveryLane.maxCredit, credit + earned)
            }
            revisions = now
        }
    }
    private let queue: Mutex<Queue>

    init(eventLoop: any EventLoop, policy: WatchDeliveryPolicy) {
        self.eventLoop = eventLoop
        self.policy = policy
        var q = Queue()
        q.revisions = policy.committedRevisions()
        queue = Mutex(q)
    }

    func execute(_ work: @escaping @Sendable () -> Void) {
        let start = queue.withLock { q -> Bool in
            q.works.append(work)
            if q.scheduled { return false }
            q.scheduled = true
            return true
        }
        if start { eventLoop.execute { self.run() } }
    }

    /// Counts `events` sent against the allowance. Call from the lane's work.
    func charge(_ events: Int) {
        queue.withLock { $0.credit -= events }
    }

    private enum Next {
        case work(@Sendable () -> Void)
        case empty
        case wait
    }

    private func run() {
        let deadline = NIODeadline.now() + Self.slice
        let writesFirst = policy.writesFirst()
        while true {
            let revisions = writesFirst ? policy.committedRevisions() : 0
            let next = queue.withLock { q -> Next in
                if q.head == q.works.count {
                    q.works.removeAll(keepingCapacity: q.works.count <= 4096)
                    q.head = 0
                    q.scheduled = false
                    return .empty
                }
                if writesFirst {
                    q.refill(revisions: revisions)
                    if q.credit <= 0 { return .wait }
                }
                let w = q.works[q.head]
                q.head += 1
                if q.head >= 4096 && q.head * 2 >= q.works.count {
                    q.works.removeFirst(q.head)
                    q.head = 0
                }
                return .work(w)
            }
            switch next {
            case .empty:
                return
            case .wait:
                eventLoop.scheduleTask(in: Self.recheck) { self.run() }
                return
            case .work(let work):
                work()
                if NIODeadline.now() >= deadline {
                    eventLoop.execute { self.run() }
                    return
                }
            }
        }
    }
}

/// The delivery lanes of one server, one per event loop (created on first use).
final class WatchDeliveryLanes: Sendable {
    private let lanes = Mutex<[ObjectIdentifier: WatchDeliveryLane]>([:])
    let policy: WatchDeliveryPolicy

    init(policy: WatchDeliveryPolicy) {
        self.policy = policy
    }

    func lane(for eventLoop: any EventLoop) -> WatchDeliveryLane {
        lanes.withLock { lanes in
            let id = ObjectIdentifier(eventLoop)
            if let lane = lanes[id] { return lane }
            let lane = WatchDeliveryLane(eventLoop: eventLoop, policy: policy)
            lanes[id] = lane
            return lane
        }
    }
}
