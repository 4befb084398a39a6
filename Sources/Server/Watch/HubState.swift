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
            var r = WatchResponse(watchID: -1, headerRevision: current)
            r.created = true
            r.canceled = true
            r.cancelReason = failure.rawValue
            _ = session.enqueue(r, bounded: false)
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
        if isSynced {
            w.isSynced = true
            synced.insert(w)
        } else {
            unsynced[ObjectIdentifier(w)] = w
            scheduleCatchUp()
        }
        if o.progressNotify && s.progressTimer == nil { armProgressTimer(session, s) }
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
        var perSpan: [KeySpan: [Event]] = [:]
        for rev in revisions where rev.revision > dispatchedRevision {
            for event in rev.events {
                synced.forEachMatchingSpan(event.kv.key) { perSpan[$0, default: []].append(event) }
            }
        }
        dispatchedRevision = last.revision
        defer { answerDeferredProgress() }
        for (span, events) in perSpan {
            var withPrev: EventList?
            var withoutPrev: EventList?
            for w in synced.watchers(of: span) {
                let list: EventList
                if w.filterPuts || w.filterDeletes || events[0].kv.modRevision < w.next {
                    let mine = events.filter { $0.kv.modRevision >= w.next && w.accepts($0) }.map(w.shaped)
                    if mine.isEmpty { continue }
                    list = EventList(mine)
                } else if w.prevKV {
                    if withPrev == nil { withPrev = EventList(events) }
                    list = withPrev!
                } else {
                    if withoutPrev == nil { withoutPrev = EventList(events.map(w.shaped)) }
                    list = withoutPrev!
                }
                var r = WatchResponse(watchID: w.id, headerRevision: last.revision)
                r.eventList = list
                r.fragmentAllowed = w.fragment
                if w.session.enqueue(r, bounded: true) {
                    w.next = last.revision + 1
                    w.sentSinceProgressTick = true
                } else {
                    // The session cannot take more: catch up from the store once it drained.
                    synced.remove(w)
                    w.isSynced = false
                    w.next = list.events[0].kv.modRevision
                    unsynced[ObjectIdentifier(w)] = w
                }
            }
        }
    }

    // MARK: catching up from history

    func scheduleCatchUp() {
        guard !catchUpScheduled, !unsynced.isEmpty, let hub else { return }
        catchUpScheduled = true
        hub.queue.async { [self] in
            catchUpScheduled = false
            catchUp()
        }
    }

    /// One round of etcd's syncWatchers: reads the history the ready unsynced watchers miss from
    /// one store snapshot and queues it; watchers that reached the snapshot's revision become
    /// synced.
    func catchUp() {
        var ready: [Watcher] = []
        var roomBySession: [ObjectIdentifier: Bool] = [:]
        for w in unsynced.values {
            let sid = ObjectIdentifier(w.session)
            let room = roomBySession[sid] ?? w.session.hasRoomOrSignalLater()
            roomBySession[sid] = room
            if room { ready.append(w) }
            if ready.count >= config.maxWatchersPerCatchUp { break }
        }
        guard !ready.isEmpty else { return }
        let snapshot = store.read()
        let current = snapshot.revision
        // etcd's compactMainRev is -1 until the first compaction.
        let compacted = snapshot.compactRevision > 0 ? snapshot.compactRevision : -1
        var live: [Watcher] = []
        for w in ready {
            if w.next < compacted {
                var r = WatchResponse(watchID: w.id, headerRevision: 0)
                r.canceled = true
                r.compactRevision = compacted
                _ = w.session.enqueue(r, bounded: false)
                if let s = sessions[ObjectIdentifier(w.session)] { remove(w, from: s) }
            } else {
                live.append(w)
            }
        }
        let from = live.map(\.next).min() ?? current + 1
        let through = min(current, from + config.maxRevisionsPerCatchUp - 1)
        var history: [RevisionEvents] = []
        if from <= through {
            do {
                history = try snapshot.changes(from: from, through: through) { key in
                    live.contains { $0.span.contains(key) }
                }
            } catch {
                // Compacted meanwhile (the next round cancels) or an engine failure: retry.
                scheduleCatchUp()
                return
            }
        }
        var previous: [Int64: [Int: KeyValue?]] = [:]
        // Watchers that want the same events from the same revision share one list.
        var shared: [CatchUpKey: (list: EventList, reached: Int64)] = [:]
        for w in live {
            let key = CatchUpKey(span: w.span, next: w.next, prevKV: w.prevKV,
                                 filterPuts: w.filterPuts, filterDeletes: w.filterDeletes)
            if let (list, reached) = shared[key] {
                deliverCatchUp(w, list, reached: reached, current: current)
                continue
            }
            var events: [Event] = []
            var bytes = 0
            var reached = through
            var lastRevision: Int64 = 0
            revisions: for rev in history where rev.revision >= w.next {
                var revEvents: [Event] = []
                for (i, e) in rev.events.enumerated() where w.span.contains(e.kv.key) && w.accepts(e) {
                    var e = e
                    if w.prevKV {
                        if let cached = previous[rev.revision]?[i] {
                            e.prevKV = cached
                        } else {
                            let p = snapshot.previous(of: e)
                            previous[rev.revision, default: [:]][i] = .some(p)
                            e.prevKV = p
                        }
                    }
                    revEvents.append(e)
                }
                if revEvents.isEmpty { continue }
                let size = WatchHub.size(of: revEvents)
                if !events.isEmpty && bytes + size > config.sessionBufferBytes {
                    reached = lastRevision
                    break revisions
                }
                events += revEvents
                bytes += size
                lastRevision = rev.revision
            }
            let list = EventList(events)
            shared[key] = (list, reached)
            deliverCatchUp(w, list, reached: reached, current: current)
        }
        answerDeferredProgress()
        scheduleCatchUp()
    }

    struct CatchUpKey: Hashable {
        var span: KeySpan
        var next: Int64
        var prevKV: Bool
        var filterPuts: Bool
        var filterDeletes: Bool
    }

    /// Queues a catch-up batch (history through `reached`, read at `current`) for `w`; the
    /// watcher rejoins the synced set when it reached `current`.
    private func deliverCatchUp(_ w: Watcher, _ list: EventList, reached: Int64, current: Int64) {
        if !list.events.isEmpty {
            var r = WatchResponse(watchID: w.id, headerRevision: current)
            r.eventList = list
            r.fragmentAllowed = w.fragment
            guard w.session.enqueue(r, bounded: true) else { return }
            w.sentSinceProgressTick = true
        }
        w.next = max(w.next, reached + 1)
        if w.next > current {
            unsynced[ObjectIdentifier(w)] = nil
            w.isSynced = true
            synced.insert(w)
        }
    }

    // MARK: progress

    /// Answers a pending RequestProgress once every watcher of the session is synced: the
    /// header revision is one up to which every watcher got every event.
    func answerProgressIfSynced(_ session: WatchSession, _ s: SessionWatchers) {
        guard s.progressRequested else { return }
        if s.watchers.isEmpty {
            s.progressRequested = false
            return
        }
        // etcd 3.5+: not while a watcher is unsynced or waits for a future start revision.
        var revision = Int64.max
        for w in s.watchers.values {
            guard w.isSynced, w.startRevision <= dispatchedRevision else { return }
            revision = min(revision, max(dispatchedRevision, w.next - 1))
        }
        s.progressRequested = false
        _ = session.enqueue(WatchResponse(watchID: -1, headerRevision: revision), bounded: false)
    }

    /// Sessions whose RequestProgress waits for their watchers to sync.
    var progressWaiting: [ObjectIdentifier: WatchSession] = [:]

    func answerDeferredProgress() {
        guard !progressWaiting.isEmpty else { return }
        for (id, session) in progressWaiting {
            guard let s = sessions[id], s.progressRequested else {
                progressWaiting[id] = nil
                continue
            }
            answerProgressIfSynced(session, s)
            if !s.progressRequested { progressWaiting[id] = nil }
        }
    }

    private func armProgressTimer(_ session: WatchSession, _ s: SessionWatchers) {
        guard let hub else { return }
        let interval = config.progressNotifyInterval
        let jitter = Duration.nanoseconds(Int64.random(in: 0...max(1, interval.nanoseconds / 10)))
        let item = DispatchWorkItem { [weak self, weak session] in
            guard let self, let session, let s = self.sessions[ObjectIdentifier(session)] else { return }
            s.progressTimer = nil
            self.progressTick(session, s)
        }
        s.progressTimer = item
        hub.queue.asyncAfter(deadline: .now() + .nanoseconds(Int((interval + jitter).nanoseconds)), execute: item)
    }

    /// etcd's periodic progress notification: each synced watcher with progress_notify that got
    /// no events since the last tick is told the revision it has seen everything up to.
    private func progressTick(_ session: WatchSession, _ s: SessionWatchers) {
        var any = false
        for w in s.watchers.values where w.progressNotify {
            any = true
            if !w.sentSinceProgressTick && w.isSynced {
                let r = WatchResponse(watchID: w.id, headerRevision: max(dispatchedRevision, w.next - 1))
                _ = session.enqueue(r, bounded: false)
            }
            w.sentSinceProgressTick = false
        }
        if any { armProgressTimer(session, s) }
    }

    // MARK: helpers

    private func sessionWatchers(_ session: WatchSession) -> SessionWatchers {
        let id = ObjectIdentifier(session)
        if let s = sessions[id] { return s }
        let s = SessionWatchers()
        sessions[id] = s
        return s
    }

    private func remove(_ w: Watcher, from s: SessionWatchers) {
        s.watchers[w.id] = nil
        detach(w)
    }

    private func detach(_ w: Watcher) {
        if w.isSynced {
            synced.remove(w)
        } else {
            unsynced[ObjectIdentifier(w)] = nil
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
