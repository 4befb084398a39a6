import Synchronization
import MVCC

/// What a client asks for when it creates a watcher (etcd's WatchCreateRequest, decoded).
public struct WatchCreateOptions: Sendable, Hashable {
    /// The watched key; with `rangeEnd`, etcd's encoding (empty = single key, `[0]` = every
    /// key >= `key`, otherwise [key, rangeEnd)). An empty key means `[0]`, as in etcd.
    public var key: [UInt8]
    public var rangeEnd: [UInt8]
    /// 0: from the next revision. Otherwise the first revision to deliver (history replay
    /// when it is not above the current revision).
    public var startRevision: Int64
    /// 0: the hub picks the lowest free ID of the session. Otherwise the client's ID.
    public var watchID: Int64
    public var prevKV: Bool
    public var filterPuts: Bool
    public var filterDeletes: Bool
    public var progressNotify: Bool
    public var fragment: Bool

    public init(key: [UInt8], rangeEnd: [UInt8] = [], startRevision: Int64 = 0, watchID: Int64 = 0,
                prevKV: Bool = false, filterPuts: Bool = false, filterDeletes: Bool = false,
                progressNotify: Bool = false, fragment: Bool = false) {
        self.key = key
        self.rangeEnd = rangeEnd
        self.startRevision = startRevision
        self.watchID = watchID
        self.prevKV = prevKV
        self.filterPuts = filterPuts
        self.filterDeletes = filterDeletes
        self.progressNotify = progressNotify
        self.fragment = fragment
    }
}

/// Events shared, unchanged, by the responses of every watcher that gets exactly these events
/// (watchers of one prefix): their wire encoding can be made once (`derived`).
public final class EventList: Sendable {
    public let events: [Event]
    /// Approximate bytes held (the outbox budget's unit).
    public var bytes: Int { byteEnds.last ?? 0 }
    /// Approximate bytes of `events[0...i]`, for each i.
    private let byteEnds: [Int]
    private let cache = Mutex<(any Sendable)?>(nil)

    public init(_ events: [Event]) {
        self.events = events
        var total = 0
        byteEnds = events.map { total += WatchHub.size(of: $0); return total }
    }

    /// Approximate bytes of `events[range]`.
    func bytes(in range: Range<Int>) -> Int {
        range.isEmpty ? 0 : byteEnds[range.upperBound - 1] - (range.lowerBound == 0 ? 0 : byteEnds[range.lowerBound - 1])
    }

    /// A value computed from the events on first use and shared by every holder of this list.
    public func derived<T: Sendable>(_ make: ([Event]) -> T) -> T {
        if let v = cache.withLock({ $0 }) as? T { return v }
        let v = make(events)
        cache.withLock { $0 = v }
        return v
    }
}

/// Consecutive events of a shared `EventList`: all of it, or the part one watcher still needs
/// (watchers catching up from different revisions share one list and its wire encoding).
public struct EventSlice: Sendable {
    public let list: EventList
    /// Indices into `list.events`; never empty.
    public let range: Range<Int>

    public init(_ list: EventList) {
        self.init(list, 0..<list.events.count)
    }

    public init(_ list: EventList, _ range: Range<Int>) {
        self.list = list
        self.range = range
    }

    public var events: ArraySlice<Event> { list.events[range] }
    /// Approximate bytes (the outbox budget's unit).
    public var bytes: Int { list.bytes(in: range) }
}

/// One message of a watch session (etcd's WatchResponse without the member identity, which
/// the transport adds to the header).
public struct WatchResponse: Sendable {
    /// `-1` for a progress response on behalf of every watcher of the session and for a failed
    /// create.
    public var watchID: Int64
    /// The header revision: for events, the store revision they were delivered at (>= the
    /// revision of the last event); for progress, "every event up to here was delivered".
    public var headerRevision: Int64
    public var created = false
    public var canceled = false
    public var cancelReason = ""
    /// Set (with `canceled`) when the watcher's start revision was compacted.
    public var compactRevision: Int64 = 0
    /// Events in revision order, as slices of the shared lists they were queued in (several
    /// when the session merged later revisions into a response not sent yet); never an empty
    /// slice. `prevKV` set only for watchers that asked for it.
    public private(set) var eventSlices: [EventSlice] = []
    /// Approximate bytes of the events (the outbox budget's unit), kept with the slices: a
    /// response that absorbs many merges must not re-add its slices on each one.
    public private(set) var eventBytes = 0
    public var events: [Event] { eventSlices.flatMap(\.events) }
    /// The watcher asked for large responses to be fragmented (etcd's `fragment`).
    public var fragmentAllowed = false

    public init(watchID: Int64, headerRevision: Int64) {
        self.watchID = watchID
        self.headerRevision = headerRevision
    }

    /// Sets the events: slices of shared lists, none empty.
    mutating func setEvents(_ slices: [EventSlice]) {
        eventSlices = slices
        eventBytes = slices.reduce(0) { $0 + $1.bytes }
    }

    /// Appends the events of `later` (a merge of later revisions into this unsent response).
    mutating func appendEvents(of later: WatchResponse) {
        eventSlices += later.eventSlices
        eventBytes += later.eventBytes
    }

    /// True for a progress notification (no events, not a control message).
    public var isProgress: Bool { eventSlices.isEmpty && !created && !canceled }
    /// True for a response that carries events (and nothing else).
    var carriesEventsOnly: Bool { !eventSlices.isEmpty && !created && !canceled && compactRevision == 0 }
}

/// Where a session's responses go: the response side of one Watch stream.
///
/// Contract: `execute` runs work serially, in submission order, on the stream's executor (the
/// connection's event loop); `send` and `isWritable` are called only from there. `send` must
/// not block: the hub stops calling it while `isWritable` is false and resumes when the owner
/// calls `WatchSession.resumeDelivery()` (e.g. from the transport's writability callback).
public protocol WatchSink: AnyObject, Sendable {
    func execute(_ work: @escaping @Sendable () -> Void)
    var isWritable: Bool { get }
    func send(_ response: WatchResponse)
}

/// Errors etcd reports in `cancel_reason` of a failed create.
public enum WatchCreateError: String, Error, Sendable {
    case duplicateID = "mvcc: duplicate watch ID provided on the WatchStream"
    case emptyRange = "mvcc: watcher range is empty"
}

/// Tunables of the hub.
public struct WatchHubConfig: Sendable {
    /// etcd's --experimental-watch-progress-notify-interval (default 10 minutes; minimum
    /// 100 ms as etcd). Each session adds up to 10% jitter.
    public var progressNotifyInterval: Duration = .seconds(600)
    /// Bytes of events a session may hold queued for its stream before its watchers stop being
    /// fed live and fall back to catching up from the store ("unsynced").
    public var sessionBufferBytes: Int = 256 << 10
    /// Most bytes of events one response grows to when later revisions are merged into it
    /// while it waits to be sent (see `WatchSession`).
    public var mergedResponseBytes: Int = 64 << 10
    /// Most revisions one catch-up response covers (etcd: 1000).
    public var maxRevisionsPerCatchUp: Int64 = 1000
    /// Most unsynced watchers served per catch-up round (etcd: 512).
    public var maxWatchersPerCatchUp: Int = 512

    public init() {}
}
