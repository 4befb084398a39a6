import MVCC

/// etcd's syncWatchers: unsynced watchers read the history they miss from the store.
extension HubState {
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
                // etcd reads the history of a negative start revision as an empty range (its
                // key sorts above every stored revision) and syncs the watcher at `current`.
                if w.next < 0 { w.next = current &+ 1 }
                live.append(w)
            }
        }
        var previous: [Int64: [Int: KeyValue?]] = [:]
        // Watchers that want the same events (a group) share one list, read from the lowest
        // revision any of them needs; each gets the part from its own next revision, so the
        // list's wire encoding is shared too. Each group reads its own window of history, so a
        // watcher far behind never holds back one close to the head.
        var groups: [CatchUpKey: [Watcher]] = [:]
        for w in live {
            groups[CatchUpKey(span: w.span, prevKV: w.prevKV, filterPuts: w.filterPuts,
                              filterDeletes: w.filterDeletes), default: []].append(w)
        }
        var progressed = false
        // Lists no outbox holds any more are forgotten.
        catchUpLists = catchUpLists.compactMapValues { lists in
            let live = lists.filter { $0.list != nil }
            return live.isEmpty ? nil : live
        }
        for (key, allMembers) in groups {
            // Watchers inside a list that an earlier round read (and an outbox still holds) take
            // their slice of it: lagging watchers share a few lists instead of pinning one each
            // (watch-fanout with delivery held back 20 ms: peak RSS 175 -> 117 MiB).
            var members: [Watcher] = []
            let cached = catchUpLists[key] ?? []
            for w in allMembers {
                if let c = cached.first(where: { $0.from <= w.next && w.next <= $0.reached }), let list = c.list {
                    if deliverCatchUp(w, list, reached: c.reached, current: current) { progressed = true }
                } else {
                    members.append(w)
                }
            }
            if members.isEmpty { continue }
            let from = members.map(\.next).min()!
            let through = min(current, from + config.maxRevisionsPerCatchUp - 1)
            let model = members[0]
            var events: [Event] = []
            var reached = max(through, from - 1)
            if from <= through {
                let history: [RevisionEvents]
                do {
                    history = try snapshot.changes(from: from, through: through) { model.span.contains($0) }
                } catch {
                    // Compacted meanwhile (the next round cancels) or an engine failure: retry.
                    progressed = true
                    continue
                }
                // At most half an outbox: a session with room (less than half full) takes it.
                let budget = config.sessionBufferBytes / 2
                var bytes = 0
                var lastRevision: Int64 = 0
                revisions: for rev in history {
                    var revEvents: [Event] = []
                    for (i, e) in rev.events.enumerated() where model.span.contains(e.kv.key) && model.accepts(e) {
                        var e = e
                        if model.prevKV {
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
                    if !events.isEmpty && bytes + size > budget {
                        reached = lastRevision
                        break revisions
                    }
                    events += revEvents
                    bytes += size
                    lastRevision = rev.revision
                }
            }
            let list = EventList(events)
            if !events.isEmpty { catchUpLists[key, default: []].append(CatchUpList(from: from, reached: reached, list: list)) }
            for w in members where deliverCatchUp(w, list, reached: reached, current: current) {
                progressed = true
            }
        }
        answerDeferredProgress()
        // Another round right away only if this one moved; otherwise the sessions that lacked
        // room signal when they have it (a round that cannot move would only spin).
        if progressed { scheduleCatchUp() }
    }

    /// A list read by a catch-up round: the events of `from ... reached` (of one group's
    /// watchers), held weakly: it lives as long as an outbox holds part of it.
    struct CatchUpList {
        let from: Int64
        let reached: Int64
        weak var list: EventList?
    }

    struct CatchUpKey: Hashable {
        var span: KeySpan
        var prevKV: Bool
        var filterPuts: Bool
        var filterDeletes: Bool
    }

    /// Queues a catch-up batch for `w`: the events of `list` (history through `reached`, read
    /// at `current`) from `w.next` on, as one response (a slice of the shared list). The
    /// watcher rejoins the synced set when it reached `current`.
    /// Returns whether the watcher moved (got events, skipped ahead, or became synced).
    @discardableResult
    func deliverCatchUp(_ w: Watcher, _ list: EventList, reached: Int64, current: Int64) -> Bool {
        let events = list.events
        var from = 0, to = events.count
        while from < to {
            let mid = (from + to) / 2
            if events[mid].kv.modRevision < w.next { from = mid + 1 } else { to = mid }
        }
        if from < events.count {
            var r = WatchResponse(watchID: w.id, headerRevision: current)
            r.setEvents([EventSlice(list, from..<events.count)])
            r.fragmentAllowed = w.fragment
            guard w.session.enqueue(r, bounded: true) else { return false }
            w.sentSinceProgressTick = true
        }
        let before = w.next
        w.next = max(w.next, reached + 1)
        if w.next > current {
            clearUnsynced(w)
            w.isSynced = true
            synced.insert(w)
            return true
        }
        return from < events.count || w.next != before
    }
}
