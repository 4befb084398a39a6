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
    func deliverCatchUp(_ w: Watcher, _ list: EventList, reached: Int64, current: Int64) {
        if !list.events.isEmpty {
            var r = WatchResponse(watchID: w.id, headerRevision: current)
            r.eventLists = [list]
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
}
