import Dispatch
import MVCC

/// RequestProgress and periodic progress notifications.
extension HubState {
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

    func armProgressTimer(_ session: WatchSession, _ s: SessionWatchers) {
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
    func progressTick(_ session: WatchSession, _ s: SessionWatchers) {
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
}
