import Dispatch
import MVCC
import Synchronization

/// etcd's watchable store on an `MVCCStore`: turns committed revisions into watch responses
/// for every session, with etcd's guarantees (revision order, no duplicates, no gaps, one
/// revision's events never split, replay from history, compaction cancels).
///
/// Design (etcd's synced / unsynced / victim split, reference `mvcc/watchable_store.go`):
/// - The store's commit observer only appends the committed revisions to the hub's pending
///   list and, unless one is already scheduled, schedules one dispatch on the hub's serial
///   queue; the applier thread never waits for watchers. A dispatch takes every revision
///   pending by the time it runs, so when watchers are busy, commits are matched in larger
///   groups instead of queueing one dispatch each.
/// - On that queue, each revision's events are matched against the *synced* watchers (those
///   that have everything up to the last dispatched revision) and queued in their sessions'
///   bounded outboxes, one response per watcher per committed group.
/// - A watcher whose session's outbox is full becomes *unsynced* at the first revision it
///   missed. Unsynced watchers (also those created with a past start revision) catch up by
///   reading the revision records from a store snapshot, at most
///   `maxRevisionsPerCatchUp` revisions and one outbox of events at a time, whenever their
///   session has room; then they rejoin the synced set. A start revision below the compaction
///   revision cancels the watcher with `compact_revision` set.
/// - Sessions move responses from their outbox to their sink on the sink's executor (the
///   connection's event loop) while the sink is writable.
///
/// Memory: per session at most one outbox (`sessionBufferBytes` of events, plus small control
/// responses) plus what the transport buffers; per watcher a few words. No global event log.
public final class WatchHub: Sendable {
    let store: MVCCStore
    public let config: WatchHubConfig
    let queue = DispatchQueue(label: "rusd.watch-hub")
    /// Everything below is touched only on `queue`.
    let state: HubState
    /// Committed revisions not dispatched yet, and whether a dispatch is scheduled.
    private let pending = Mutex<(revisions: [RevisionEvents], scheduled: Bool)>(([], false))
    /// When the last commit of more than one revision was observed (DispatchTime uptime
    /// nanoseconds).
    private let lastQueuedCommit = Atomic<UInt64>(0)
    /// Revisions committed since the hub was created.
    private let revisionsCommitted = Atomic<Int64>(0)
    /// Since when some watcher has been unsynced (uptime nanoseconds), 0 while none is.
    private let unsyncedSince = Atomic<UInt64>(0)
    /// The current burst of queued writes outlasted the hold (see `writesComeFirst`).
    private let burstOutlastedHold = Atomic<Bool>(false)
    /// etcd's watch gauges, kept current by the hub so /metrics reads them without a hop onto
    /// the hub's queue.
    let gauges = Gauges()
    final class Gauges: Sendable {
        /// Sessions opened and not closed yet, with or without watchers.
        let streams = Atomic<Int>(0)
        /// Attached watchers, synced or not.
        let watchers = Atomic<Int>(0)
        /// Unsynced watchers (catching up from the store).
        let unsynced = Atomic<Int>(0)
    }

    /// Creates the hub and installs it as `store`'s commit observer.
    public init(store: MVCCStore, config: WatchHubConfig = WatchHubConfig()) {
        self.store = store
        var c = config
        if c.progressNotifyInterval < .milliseconds(100) { c.progressNotifyInterval = .milliseconds(100) }
        self.config = c
        state = HubState(store: store, config: c)
        state.hub = self
        store.setObserver { [weak self] revisions in
            self?.committed(revisions)
        }
        // Revisions up to this one were published before the observer was installed (or were
        // already dispatched).
        queue.sync { state.dispatchedRevision = max(state.dispatchedRevision, store.currentRevision) }
    }

    /// The commit observer: queues `revisions` for one dispatch of everything pending.
    private func committed(_ revisions: [RevisionEvents]) {
        revisionsCommitted.add(Int64(revisions.count), ordering: .relaxed)
        if revisions.count > 1 {
            let now = DispatchTime.now().uptimeNanoseconds
            let previous = lastQueuedCommit.exchange(now, ordering: .relaxed)
            // A new burst of queued writes: it gets the hold afresh.
            if now &- previous >= UInt64(Self.burstGap.nanoseconds) {
                burstOutlastedHold.store(false, ordering: .relaxed)
            }
        }
        let schedule = pending.withLock { p -> Bool in
            p.revisions += revisions
            if p.scheduled { return false }
            p.scheduled = true
            return true
        }
        guard schedule else { return }
        queue.async {
            let revisions = self.pending.withLock { p -> [RevisionEvents] in
                p.scheduled = false
                defer { p.revisions = [] }
                return p.revisions
            }
            self.state.dispatch(revisions)
        }
    }

    /// Queued commits less than this apart belong to one burst of writes.
    static let burstGap = Duration.milliseconds(20)

    /// Whether writes are queueing up: a commit within the last `burstGap` held more than one
    /// revision, i.e. requests waited for the commit before theirs.
    public func writesQueueing() -> Bool {
        let last = lastQueuedCommit.load(ordering: .relaxed)
        return last != 0 && DispatchTime.now().uptimeNanoseconds &- last < UInt64(Self.burstGap.nanoseconds)
    }

    /// Revisions committed since the hub was created (delivery's allowance grows with them).
    public var committedRevisions: Int64 { revisionsCommitted.load(ordering: .relaxed) }

    /// Whether some watcher has been unsynced (behind the store, catching up) for at least
    /// `duration` without a moment when none was.
    public func watchersLagging(for duration: Duration) -> Bool {
        let since = unsyncedSince.load(ordering: .relaxed)
        return since != 0 && DispatchTime.now().uptimeNanoseconds &- since >= UInt64(duration.nanoseconds)
    }

    /// Whether watch delivery should yield to writes now: writes are queueing up, and in this
    /// burst of them (queued commits less than `burstGap` apart) no watcher has lagged for
    /// `maxHold` yet. A burst that outlasts the hold gets no more priority until it ends, so
    /// watchers lag by about `maxHold` at most and then share the machine with the writes.
    public func writesComeFirst(maxHold: Duration) -> Bool {
        guard writesQueueing(), !burstOutlastedHold.load(ordering: .relaxed) else { return false }
        if watchersLagging(for: maxHold) {
            burstOutlastedHold.store(true, ordering: .relaxed)
            return false
        }
        return true
    }

    /// Called on the queue when the first watcher becomes unsynced (`since` = now) or the last
    /// one synced (0).
    func lagging(since: UInt64) {
        unsyncedSince.store(since, ordering: .relaxed)
    }

    /// Removes the hub from the store; sessions get nothing more.
    public func detach() {
        store.setObserver(nil)
    }

    /// A new session delivering to `sink`.
    public func openSession(_ sink: any WatchSink) -> WatchSession {
        gauges.streams.add(1, ordering: .relaxed)
        return WatchSession(hub: self, sink: sink)
    }

    /// Called once per session, by its first `close`.
    func streamClosed() {
        gauges.streams.subtract(1, ordering: .relaxed)
    }

    /// etcd's watch gauges: Watch streams open (with or without watchers), watchers, and
    /// unsynced ("slow") watchers. Reads no hub state: for /metrics, from any thread.
    public var gaugeValues: (streams: Int, watchers: Int, slow: Int) {
        (gauges.streams.load(ordering: .relaxed), gauges.watchers.load(ordering: .relaxed),
         gauges.unsynced.load(ordering: .relaxed))
    }

    /// Runs `work` on the dispatch queue.
    func submit(_ work: @escaping @Sendable (HubState) -> Void) {
        queue.async { work(self.state) }
    }

    /// Waits until everything submitted so far has run (tests, shutdown).
    public func sync() {
        queue.sync {}
    }

    /// Number of watchers (synced, unsynced) — for tests and metrics.
    public var watcherCounts: (synced: Int, unsynced: Int) {
        queue.sync { (state.synced.count, state.unsynced.count) }
    }

    /// Approximate bytes of `events` held in an outbox (the budget's unit).
    static func size(of events: [Event]) -> Int {
        events.reduce(0) { $0 + size(of: $1) }
    }

    static func size(of e: Event) -> Int {
        var n = 48 + e.kv.key.count + e.kv.value.count
        if let p = e.prevKV { n += 48 + p.key.count + p.value.count }
        return n
    }
}
