import Dispatch
import MVCC

/// The hub's mutable state: watchers, sessions, the synced index. Confined to the hub's
/// dispatch queue (every method runs there), which is what makes `@unchecked Sendable` sound.
final class HubState: @unchecked Sendable {
    let store: MVCCStore
    let config: WatchHubConfig
    weak var hub: WatchHub?

    /// Every revision up to this one has been matched against the synced watchers.
    var dispatchedRevision: Int64 = 0
    var synced = WatcherIndex()
    var unsynced: [ObjectIdentifier: Watcher] = [:]
    var sessions: [ObjectIdentifier: SessionWatchers] = [:]
    var catchUpScheduled = false
    /// Catch-up lists still held by some outbox, per group (see `catchUp`): a watcher whose next
    /// revision one of them covers gets a slice of it instead of a list of its own.
    var catchUpLists: [CatchUpKey: [CatchUpList]] = [:]
    /// Sessions whose RequestProgress waits for their watchers to sync.
    var progressWaiting: [ObjectIdentifier: WatchSession] = [:]
    /// Attached watchers that asked for prev_kv. While there are none the store's writer skips
    /// reading previous versions; `dispatch` fills them in for revisions committed that way.
    var prevKVWatchers = 0 {
        didSet {
            if (oldValue == 0) != (prevKVWatchers == 0) { store.setPreviousValuesWanted(prevKVWatchers > 0) }
        }
    }

    /// The watchers of one session and its pending requests.
    final class SessionWatchers {
        var watchers: [Int64: Watcher] = [:]
        var nextID: Int64 = 0
        /// A RequestProgress waits for every watcher to be synced.
        var progressRequested = false
        var progressTimer: DispatchWorkItem?
    }

    init(store: MVCCStore, config: WatchHubConfig) {
        self.store = store
        self.config = config
        store.setPreviousValuesWanted(false)
    }

    // MARK: requests

    func create(_ session: WatchSession, _ o: WatchCreateOptions) {
        guard !session.isClosed else { return }
        let current = store.currentRevision
        let s = sessionWatchers(session)
        let key = o.key.isEmpty ? [0] : o.key
        let span: KeySpan
        if o.rangeEnd.isEmpty {
            span = .single(key)
        } else if o.rangeEnd == [0] {
            span = .range(key, nil)
        } else {
            span = .range(key, o.rangeEnd)
        }
        var failure: WatchCreateError?
        if let end = span.end, !span.isSingleKey, !lessThan(key, end) {
            failure = .emptyRange
        }
        var id = o.watchID
        if failure == nil {
            if id == 0 {
                while s.watchers[s.nextID] != nil { s.nextID += 1 }
                id = s.nextID
                s.nextID += 1
            } else if s.watchers[id] != nil {
                failure = .duplicateID
            }
        }
        if let failure {
            refuseCreate(session, reason: failure.rawValue)
            return
        }
        var created = WatchResponse(watchID: id, headerRevision: current)
        created.created = true
        guard session.enqueue(created, bounded: false) else { return }  // session closed

        // etcd: synced when starting now or in the future; else replays history.
        let start = o.startRevision
        let isSynced = start == 0 || start > current
        let w = Watcher(id: id, session: session, span: span, options: o,
                        next: isSynced ? max(current + 1, start) : start)
        s.watchers[id] = w
        hub?.gauges.watchers.add(1, ordering: .relaxed)
        if w.prevKV { prevKVWatchers += 1 }
        if isSynced {
            w.isSynced = true
            synced.insert(w)
        } else {
            markUnsynced(w)
            scheduleCatchUp()
        }
        if o.progressNotify && s.progressTimer == nil { armProgressTimer(session, s) }
    }

    /// A failed create: watch ID -1, `created` and `canceled`, `reason` (etcd's answer).
    func refuseCreate(_ session: WatchSession, reason: String) {
        guard !session.isClosed else { return }
        var r = WatchResponse(watchID: -1, headerRevision: store.currentRevision)
        r.created = true
        r.canceled = true
        r.cancelReason = reason
        _ = session.enqueue(r, bounded: false)
    }

    func cancel(_ session: WatchSession, _ id: Int64) {
        guard let s = sessions[ObjectIdentifier(session)], let w = s.watchers[id] else { return }
        remove(w, from: s)
        var r = WatchResponse(watchID: id, headerRevision: store.currentRevision)
        r.canceled = true
        _ = session.enqueue(r, bounded: false)
        answerProgressIfSynced(session, s)
    }

    func requestProgress(_ session: WatchSession) {
        guard let s = sessions[ObjectIdentifier(session)], !s.watchers.isEmpty else { return }
        s.progressRequested = true
        answerProgressIfSynced(session, s)
        if s.progressRequested { progressWaiting[ObjectIdentifier(session)] = session }
    }

    func close(_ session: WatchSession) {
        progressWaiting[ObjectIdentifier(session)] = nil
        guard let s = sessions.removeValue(forKey: ObjectIdentifier(session)) else { return }
        for w in s.watchers.values { detach(w) }
        s.watchers = [:]
        s.progressTimer?.cancel()
        s.progressTimer = nil
    }

    // MARK: live events

    /// Matches newly committed revisions against the synced watchers (the observer's work,
    /// moved off the applier thread). Watchers of one span without filters share one event
    /// list per committed group (with or without prev_kv).
    func dispatch(_ revisions: [RevisionEvents]) {
        guard let last = revisions.last, last.revision > dispatchedRevision else { return }
        var revisions = revisions
        if prevKVWatchers > 0 { fillPreviousValues(&revisions) }
        var perSpan: [KeySpan: [Event]] = [:]
        for rev in revisions where rev.revision > dispatchedRevision {
            for event in rev.events {
                synced.forEachMatchingSpan(event.kv.key) { perSpan[$0, default: []].append(event) }
            }
        }
        dispatchedRevision = last.revision
        defer { answerDeferredProgress() }
        for (span, events) in perSpan {
            // Each chunk wrapped once: the responses of every watcher that gets it share one
            // array as well as the list.
            var withPrev: [[EventSlice]]?
            var withoutPrev: [[EventSlice]]?
            var fellBehind: [Watcher] = []
            synced.forEachWatcher(of: span) { w in
                let lists: [[EventSlice]]
                if w.filterPuts || w.filterDeletes || events[0].kv.modRevision < w.next {
                    let mine = events.filter { $0.kv.modRevision >= w.next && w.accepts($0) }.map(w.shaped)
                    if mine.isEmpty { return }
                    lists = chunked(mine)
                } else if w.prevKV {
                    if withPrev == nil { withPrev = chunked(events) }
                    lists = withPrev!
                } else {
                    if withoutPrev == nil { withoutPrev = chunked(events.map(w.shaped)) }
                    lists = withoutPrev!
                }
                for (i, list) in lists.enumerated() {
                    var r = WatchResponse(watchID: w.id, headerRevision: last.revision)
                    r.setEvents(list)
                    r.fragmentAllowed = w.fragment
                    if w.session.enqueue(r, bounded: true) {
                        w.next = i == lists.count - 1 ? last.revision + 1 : list[0].events.last!.kv.modRevision + 1
                        w.sentSinceProgressTick = true
                    } else {
                        // The session cannot take more: catch up from the store once it drained.
                        w.next = list[0].events.first!.kv.modRevision
                        fellBehind.append(w)
                        break
                    }
                }
            }
            for w in fellBehind {
                synced.remove(w)
                w.isSynced = false
                markUnsynced(w)
            }
        }
    }

    /// Reads the previous versions the writer left out (it began those transactions while no
    /// watcher wanted prev_kv) from the store, which already holds these revisions. A previous
    /// version compacted meanwhile stays out, as in a catch-up from history.
    private func fillPreviousValues(_ revisions: inout [RevisionEvents]) {
        guard revisions.contains(where: { !$0.previousIncluded && $0.revision > dispatchedRevision }) else { return }
        let snapshot = store.read()
        for i in revisions.indices where !revisions[i].previousIncluded && revisions[i].revision > dispatchedRevision {
            for j in revisions[i].events.indices {
                revisions[i].events[j].prevKV = snapshot.previous(of: revisions[i].events[j])
            }
            revisions[i].previousIncluded = true
        }
    }

    /// `events` (whole revisions, in order) cut at revision boundaries into lists (each alone in
    /// an array) of at most
    /// `mergedResponseBytes` each (a single larger revision stays whole), so that a dispatch
    /// covering many commits does not make one oversized response.
    private func chunked(_ events: [Event]) -> [[EventSlice]] {
        let limit = config.mergedResponseBytes
        var lists: [[EventSlice]] = []
        var start = 0
        var bytes = 0
        for i in events.indices {
            let size = WatchHub.size(of: events[i])
            if i > start && events[i].kv.modRevision != events[i - 1].kv.modRevision && bytes + size > limit {
                lists.append([EventSlice(EventList(Array(events[start..<i])))])
                start = i
                bytes = 0
            }
            bytes += size
        }
        lists.append([EventSlice(start == 0 ? EventList(events) : EventList(Array(events[start...])))])
        return lists
    }

    // MARK: helpers

    private func sessionWatchers(_ session: WatchSession) -> SessionWatchers {
        let id = ObjectIdentifier(session)
        if let s = sessions[id] { return s }
        let s = SessionWatchers()
        sessions[id] = s
        return s
    }

    func remove(_ w: Watcher, from s: SessionWatchers) {
        s.watchers[w.id] = nil
        detach(w)
    }

    /// Moves `w` to the unsynced set (the hub notes when watchers start lagging).
    func markUnsynced(_ w: Watcher) {
        if unsynced.isEmpty { hub?.lagging(since: DispatchTime.now().uptimeNanoseconds) }
        unsynced[ObjectIdentifier(w)] = w
        hub?.gauges.unsynced.store(unsynced.count, ordering: .relaxed)
    }

    /// Removes `w` from the unsynced set (the hub notes when none lags any more).
    func clearUnsynced(_ w: Watcher) {
        unsynced[ObjectIdentifier(w)] = nil
        hub?.gauges.unsynced.store(unsynced.count, ordering: .relaxed)
        if unsynced.isEmpty { hub?.lagging(since: 0) }
    }

    func detach(_ w: Watcher) {
        if w.isAttached {
            if w.prevKV { prevKVWatchers -= 1 }
            hub?.gauges.watchers.subtract(1, ordering: .relaxed)
        }
        w.isAttached = false
        if w.isSynced {
            synced.remove(w)
        } else {
            clearUnsynced(w)
        }
        w.isSynced = false
    }

    private func lessThan(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.lexicographicallyPrecedes(b)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}
