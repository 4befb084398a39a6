import Dispatch
import EtcdProto
import Logging
import Synchronization

/// etcd's `--auto-compaction-mode` / `--auto-compaction-retention`, parsed as etcd 3.4 parses
/// them (embed.parseCompactionRetention): a plain non-negative integer is a revision count in
/// revision mode and a number of hours in periodic mode; anything else is a Go duration
/// ("30m", "1h30m", "2s"), which in revision mode counts nanoseconds as revisions (etcd's
/// quirk, kept). 0 disables auto compaction (`parse` returns nil).
public enum AutoCompactionPolicy: Sendable, Equatable {
    /// Keep `retention` of history: compact to the revision current one retention ago.
    case periodic(Duration)
    /// Keep `retention` revisions: every 5 minutes compact to current − retention.
    case revision(Int64)

    /// A refused flag value, worded as etcd words it where etcd refuses it.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// `parseDuration` parses Go's duration syntax (nil when invalid). Errors: an unknown mode,
    /// an unparsable retention, a negative duration, an hour count beyond Int64 nanoseconds
    /// (etcd would wrap around or compact in a loop; rusd refuses them).
    public static func parse(mode: String, retention: String,
                             parseDuration: (String) -> Duration?) throws(ParseError) -> AutoCompactionPolicy? {
        guard mode == "periodic" || mode == "revision" else {
            throw ParseError(description: "unknown auto-compaction-mode \"\(mode)\"")
        }
        let text = retention.isEmpty ? "0" : retention
        if let count = Int64(text), count >= 0 {
            if count == 0 { return nil }
            if mode == "revision" { return .revision(count) }
            guard count <= Int64.max / nanosecondsPerHour else {
                throw ParseError(description: "error parsing CompactionRetention: \(text) hours overflows a duration")
            }
            return .periodic(.nanoseconds(count * nanosecondsPerHour))
        }
        guard let duration = parseDuration(text) else {
            throw ParseError(description: "error parsing CompactionRetention: time: invalid duration \"\(text)\"")
        }
        guard duration >= .zero else {
            throw ParseError(description: "error parsing CompactionRetention: negative retention \(text)")
        }
        if duration == .zero { return nil }
        return mode == "revision" ? .revision(duration.nanosecondsClamped) : .periodic(duration)
    }

    static let nanosecondsPerHour: Int64 = 3_600_000_000_000
}

/// The decisions of etcd 3.4's compactors (etcdserver/api/v3compactor periodic.go and
/// revision.go) without clock or threads, so that they can be checked tick by tick.
///
/// The driver loops: `beginWait(currentRevision:)`, wait `interval`, then
/// `due(now:currentRevision:)`; when that names a revision, compact to it and report with
/// `finished(revision:succeeded:now:)` (an "already compacted" answer counts as success, as in
/// etcd); then loop. Times are any monotonic clock's readings.
///
/// Periodic (retention P): the interval is min(P, 1 h) / 10 (floored at 1 ms; etcd divides
/// by zero below 10 ns). A revision is sampled at the start of every wait, the last P/interval
/// + 1 samples are kept. The first compaction comes once P has passed since start, later ones
/// once min(P, 1 h) has passed since the last success; each compacts to the oldest kept sample.
/// A failure retries after one interval. Revision (retention R): every 5 minutes compact to
/// current − R when that is positive and differs from the last successful one.
public struct AutoCompactionSchedule: Sendable {
    public let policy: AutoCompactionPolicy
    /// How long to wait between checks.
    public let interval: Duration
    /// Periodic: samples kept; the oldest is the revision to compact to.
    private let retentions: Int
    private let compactInterval: Duration
    private var samples: [Int64] = []
    private var lastSuccess: Duration
    /// Periodic: the time since `lastSuccess` after which compaction is due (P at first).
    private var baseInterval: Duration
    /// Revision: the last revision compacted to (0: none).
    private var previous: Int64 = 0

    /// etcd's revision-mode period.
    public static let revisionInterval: Duration = .seconds(300)

    public init(policy: AutoCompactionPolicy, now: Duration) {
        self.policy = policy
        lastSuccess = now
        switch policy {
        case .periodic(let period):
            compactInterval = min(period, .seconds(3600))
            interval = max(compactInterval / 10, .milliseconds(1))
            let periodNs = period.nanosecondsClamped, intervalNs = interval.nanosecondsClamped
            retentions = Int(periodNs / intervalNs) + 1
            baseInterval = period
        case .revision:
            compactInterval = Self.revisionInterval
            interval = Self.revisionInterval
            retentions = 0
            baseInterval = Self.revisionInterval
        }
    }

    /// A wait begins: periodic mode records `currentRevision` (dropping the oldest sample
    /// beyond the retention window).
    public mutating func beginWait(currentRevision: Int64) {
        guard case .periodic = policy else { return }
        samples.append(currentRevision)
        if samples.count > retentions { samples.removeFirst(samples.count - retentions) }
    }

    /// A wait ended at `now`: the revision to compact to, or nil when nothing is due.
    public mutating func due(now: Duration, currentRevision: Int64) -> Int64? {
        switch policy {
        case .periodic(let period):
            guard now - lastSuccess >= baseInterval, let oldest = samples.first else { return nil }
            if baseInterval == period { baseInterval = compactInterval }
            return oldest
        case .revision(let retention):
            let (target, overflow) = currentRevision.subtractingReportingOverflow(retention)
            guard !overflow, target > 0, target != previous else { return nil }
            return target
        }
    }

    /// The compaction to `revision` ended at `now`; `succeeded` is true also when the store
    /// answered that the revision was already compacted. A failure is retried next interval.
    public mutating func finished(revision: Int64, succeeded: Bool, now: Duration) {
        guard succeeded else { return }
        lastSuccess = now
        previous = revision
    }
}

/// A monotonic clock and a one-shot timer (injectable: tests drive them by hand).
public protocol AutoCompactionClock: Sendable {
    /// Monotonic time since an arbitrary origin.
    func now() -> Duration
    /// Runs `body` once, after `delay`, on any thread.
    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void)
}

/// The real clock: uptime, and a Dispatch queue of its own for the timer.
public struct DispatchAutoCompactionClock: AutoCompactionClock {
    private let queue = DispatchQueue(label: "rusd.auto-compaction")
    public init() {}
    public func now() -> Duration { .nanoseconds(Int64(clamping: DispatchTime.now().uptimeNanoseconds)) }
    public func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) {
        queue.asyncAfter(deadline: .now() + .nanoseconds(Int(clamping: delay.nanosecondsClamped)), execute: body)
    }
}

/// Runs an `AutoCompactionSchedule`: compacts through `compact` (in rusd: `EtcdServer.compact`,
/// the ordered log, as a client's Compact RPC with physical = false), logs as etcd logs
/// ("starting / completed / failed auto periodic|revision compaction"). One check or
/// compaction at a time; `stop()` ends the loop (a compaction in flight still completes).
public final class AutoCompactor: Sendable {
    /// Compacts to a revision; calls back once with the store's answer.
    public typealias Compact = @Sendable (Int64, @escaping @Sendable (Result<Void, EtcdError>) -> Void) -> Void

    private struct State {
        var schedule: AutoCompactionSchedule
        var running = false
    }

    private let state: Mutex<State>
    private let clock: any AutoCompactionClock
    private let logger: Logger
    private let currentRevision: @Sendable () -> Int64
    private let compact: Compact

    public init(policy: AutoCompactionPolicy, clock: any AutoCompactionClock = DispatchAutoCompactionClock(),
                logger: Logger, currentRevision: @escaping @Sendable () -> Int64, compact: @escaping Compact) {
        state = Mutex(State(schedule: AutoCompactionSchedule(policy: policy, now: clock.now())))
        self.clock = clock
        self.logger = logger
        self.currentRevision = currentRevision
        self.compact = compact
    }

    /// Compacts `server`'s store.
    public convenience init(policy: AutoCompactionPolicy, server: EtcdServer, logger: Logger,
                            clock: any AutoCompactionClock = DispatchAutoCompactionClock()) {
        self.init(policy: policy, clock: clock, logger: logger,
                  currentRevision: { [weak server] in server?.currentRevision ?? 0 },
                  compact: { [weak server] revision, done in
                      guard let server else { return done(.failure(.stopped)) }
                      var r = Etcdserverpb_CompactionRequest()
                      r.revision = revision
                      server.compact(r) { done($0.map { _ in () }) }
                  })
    }

    /// Starts the loop (idempotent).
    public func start() {
        let started = state.withLock { s -> Bool in
            if s.running { return false }
            s.running = true
            return true
        }
        if started { waitAgain() }
    }

    /// Ends the loop; no compaction starts after this returns.
    public func stop() {
        state.withLock { $0.running = false }
    }

    /// Reads the revision only where etcd does (periodic: when a wait begins; revision: when
    /// it ends), so a revision source that moves on every read sees etcd's sequence of reads.
    private var samplesOnWait: Bool {
        if case .periodic = state.withLock({ $0.schedule.policy }) { return true }
        return false
    }

    private func waitAgain() {
        let revision = samplesOnWait ? currentRevision() : 0
        let interval: Duration? = state.withLock { s in
            guard s.running else { return nil }
            s.schedule.beginWait(currentRevision: revision)
            return s.schedule.interval
        }
        guard let interval else { return }
        clock.schedule(after: interval) { [weak self] in self?.check() }
    }

    private func check() {
        let revision = samplesOnWait ? 0 : currentRevision()
        let now = clock.now()
        let target: Int64?? = state.withLock { s in
            guard s.running else { return .none }
            return .some(s.schedule.due(now: now, currentRevision: revision))
        }
        guard let target else { return }
        guard let target else { return waitAgain() }
        let (kind, retention) = describe()
        logger.info("starting auto \(kind) compaction", metadata: ["revision": "\(target)", retention.0: retention.1])
        compact(target) { [self] result in
            let end = clock.now()
            let succeeded: Bool
            switch result {
            case .success, .failure(.compacted): succeeded = true
            case .failure: succeeded = false
            }
            state.withLock { $0.schedule.finished(revision: target, succeeded: succeeded, now: end) }
            if succeeded {
                logger.info("completed auto \(kind) compaction", metadata: [
                    "revision": "\(target)", retention.0: retention.1, "took": "\(goDurationString(end - now))"])
            } else if case .failure(let error) = result {
                logger.warning("failed auto \(kind) compaction", metadata: [
                    "revision": "\(target)", retention.0: retention.1,
                    "retry-interval": "\(goDurationString(state.withLock { $0.schedule.interval }))",
                    "error": "\(error.message)"])
            }
            waitAgain()
        }
    }

    /// etcd's log words: the mode and its retention field.
    private func describe() -> (String, (String, Logger.MetadataValue)) {
        switch state.withLock({ $0.schedule.policy }) {
        case .periodic(let period): ("periodic", ("compact-period", "\(goDurationString(period))"))
        case .revision(let count): ("revision", ("revision-compaction-retention", "\(count)"))
        }
    }
}

extension Duration {
    /// Whole nanoseconds, clamped to Int64.
    var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (ns, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = ns.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflow2 ? (ns < 0 ? .min : .max) : sum
    }
}

/// Go's time.Duration.String(): "2s", "1h0m0s", "30m0s", "1.5s", "250ms", "0s".
public func goDurationString(_ d: Duration) -> String {
    let ns = d.nanosecondsClamped
    if ns == 0 { return "0s" }
    let negative = ns < 0
    let magnitude = ns.magnitude
    func fraction(_ value: UInt64, _ unit: UInt64) -> String {
        let whole = value / unit, rest = value % unit
        guard rest != 0 else { return "\(whole)" }
        var digits = String(rest)
        digits = String(repeating: "0", count: String(unit - 1).count - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }
    var text: String
    if magnitude < 1_000 {
        text = "\(magnitude)ns"
    } else if magnitude < 1_000_000 {
        text = fraction(magnitude, 1_000) + "µs"
    } else if magnitude < 1_000_000_000 {
        text = fraction(magnitude, 1_000_000) + "ms"
    } else {
        let hours = magnitude / 3_600_000_000_000
        let minutes = magnitude / 60_000_000_000 % 60
        text = fraction(magnitude % 60_000_000_000, 1_000_000_000) + "s"
        if hours > 0 || minutes > 0 { text = "\(minutes)m" + text }
        if hours > 0 { text = "\(hours)h" + text }
    }
    return negative ? "-" + text : text
}
