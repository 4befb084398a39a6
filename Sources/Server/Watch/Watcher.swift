import MVCC

/// One watcher. Confined to the hub's dispatch queue.
final class Watcher {
    let id: Int64
    let session: WatchSession
    let span: KeySpan
    let filterPuts: Bool
    let filterDeletes: Bool
    let prevKV: Bool
    let fragment: Bool
    let progressNotify: Bool
    /// The requested start revision (0: none).
    let startRevision: Int64
    /// The first revision this watcher has not been given yet. For a synced watcher it is only
    /// a lower bound (revisions it was not woken for had nothing for it), used to skip
    /// revisions a catch-up already covered.
    var next: Int64
    var isSynced = false
    /// Counted among the hub's watchers (until detached).
    var isAttached = true
    /// An event response was queued since the last progress tick (etcd elides the next
    /// periodic progress notification then).
    var sentSinceProgressTick = false

    init(id: Int64, session: WatchSession, span: KeySpan, options: WatchCreateOptions, next: Int64) {
        self.id = id
        self.session = session
        self.span = span
        filterPuts = options.filterPuts
        filterDeletes = options.filterDeletes
        prevKV = options.prevKV
        fragment = options.fragment
        progressNotify = options.progressNotify
        startRevision = options.startRevision
        self.next = next
    }

    /// Whether `event` (of a key in the span) passes the watcher's filters.
    func accepts(_ event: Event) -> Bool {
        switch event.kind {
        case .put: return !filterPuts
        case .delete: return !filterDeletes
        }
    }

    /// `event` as this watcher reports it.
    func shaped(_ event: Event) -> Event {
        if prevKV || event.prevKV == nil { return event }
        var e = event
        e.prevKV = nil
        return e
    }
}

/// The synced watchers by key span, for matching a committed event's key to its watchers
/// (etcd's watcherGroup), grouped by identical span (many watchers usually share a prefix, and
/// then share one event list): single keys in a hash map, ranges scanned.
struct WatcherIndex {
    private var singles: [[UInt8]: [ObjectIdentifier: Watcher]] = [:]
    private var ranges: [KeySpan: [ObjectIdentifier: Watcher]] = [:]
    private(set) var count = 0

    mutating func insert(_ w: Watcher) {
        if w.span.isSingleKey {
            singles[w.span.start, default: [:]][ObjectIdentifier(w)] = w
        } else {
            ranges[w.span, default: [:]][ObjectIdentifier(w)] = w
        }
        count += 1
    }

    mutating func remove(_ w: Watcher) {
        let id = ObjectIdentifier(w)
        if w.span.isSingleKey {
            if singles[w.span.start]?.removeValue(forKey: id) != nil {
                count -= 1
                if singles[w.span.start]?.isEmpty == true { singles[w.span.start] = nil }
            }
        } else if ranges[w.span]?.removeValue(forKey: id) != nil {
            count -= 1
            if ranges[w.span]?.isEmpty == true { ranges[w.span] = nil }
        }
    }

    /// Visits the span of every group whose span contains `key`.
    func forEachMatchingSpan(_ key: [UInt8], _ visit: (KeySpan) -> Void) {
        if singles[key] != nil { visit(.single(key)) }
        for span in ranges.keys where span.contains(key) { visit(span) }
    }

    /// Visits the watchers of the group with exactly `span` (without copying the group).
    func forEachWatcher(of span: KeySpan, _ visit: (Watcher) -> Void) {
        let group = span.isSingleKey ? singles[span.start] : ranges[span]
        group?.values.forEach(visit)
    }
}
