import Dispatch
import EtcdServer
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// The cluster's write log in PostgreSQL (`ReplicatedLog`): every member appends its writes to
/// `rusd_log` and applies everyone's entries from it in index order.
///
/// - Appending (one task): proposals queue up while a transaction is in flight and go in the
///   next one together (group commit): ONE statement bumps `rusd_head.last` by n, inserts the n
///   entries numbered below the new head, and NOTIFYs at commit. The head row's lock, held to
///   commit, makes the commit order the index order (docs/cluster.md).
/// - Tailing (one task): reads entries above the last one it fed, in index order, and feeds them
///   to the applier; woken by NOTIFY (a listening connection) and every 100 ms regardless.
/// - Completing: a member's own entries carry a proposal number; when the applier completes one,
///   the waiting client gets the result computed at apply time. Nothing known after
///   `requestTimeout` → etcd's "etcdserver: request timed out".
/// - Read index: concurrent linearizable reads share one `SELECT last FROM rusd_head`; each is
///   answered once the local applied index reaches the head read after it arrived.
/// - Lease holder: the member holding a session advisory lock decides lease expiry (PostgreSQL
///   releases it when that member's session ends, and another member takes it over).
/// - Lease renewals (PostgresLog+Leases.swift): keep-alives made on any member reach every
///   member through `rusd_lease_renewals`, one statement per member per tick.
public final class PostgresLog: ReplicatedLog {
    /// etcd's default request timeout: 5 s + 2 × election timeout (1 s).
    static let requestTimeout: Duration = .seconds(7)
    static let maxEntriesPerAppend = 1000
    static let maxBytesPerAppend = 8 << 20

    private struct Proposal {
        var proposal: UInt64
        var bytes: [UInt8]
    }
    private struct Waiter {
        var deadline: ContinuousClock.Instant
        var complete: ApplyCompletion
    }
    private struct Reader {
        var target: UInt64
        var deadline: ContinuousClock.Instant
        var ready: @Sendable (EtcdError?) -> Void
    }
    private struct State {
        var nextProposal: UInt64
        var queued: [Proposal] = []
        var queuedBytes = 0
        var waiting: [UInt64: Waiter] = [:]
        /// Reads waiting for the next head query (target not known yet).
        var readsWithoutIndex: [Reader] = []
        /// Reads waiting for the local applied index to reach `target`.
        var readsWaitingApply: [Reader] = []
        var stopped = false
        var tasks: [Task<Void, Never>] = []
    }

    let url: SharedLogURL
    let name: String
    let memberID: UInt64
    let clientURLs: [String]
    let applier: LogApplier
    let logger: Logger
    /// Membership and the leader role (PostgresMembership+Leader.swift): the lease holder is the leader.
    let membership: PostgresMembership
    private let state: Mutex<State>
    private let appendBell = Doorbell()
    private let tailBell = Doorbell()
    private let readBell = Doorbell()
    /// Keep-alives and expiry checks waiting for the next renewal statement.
    let renewals = LeaseRenewalQueue()
    /// Whether this member currently holds the lease-holder role (for Status and tests).
    public let isLeaseHolder = Atomic<Bool>(false)
    /// Called once (then the tailer stops) when the entries after this member's applied index
    /// were trimmed: the member must re-bootstrap from the newest snapshot (docs/cluster.md).
    let trimmedPast: (@Sendable (_ next: UInt64, _ trimmedThrough: UInt64) -> Void)?

    /// Starts appending, tailing, read-index, lease-holder and timeout tasks.
    /// `trimmedPast`: what to do when the log no longer holds the entries this member needs
    /// next (nil: log it and stop applying).
    public init(url: SharedLogURL, name: String, memberID: UInt64, clientURLs: [String],
                applier: LogApplier, logger: Logger, membership: PostgresMembership,
                trimmedPast: (@Sendable (_ next: UInt64, _ trimmedThrough: UInt64) -> Void)? = nil) {
        self.membership = membership
        self.trimmedPast = trimmedPast
        self.url = url
        self.name = name
        self.memberID = memberID
        self.clientURLs = clientURLs
        self.applier = applier
        self.logger = logger
        state = Mutex(State(nextProposal: UInt64.random(in: 1 ... UInt64.max / 2)))
        let tasks = [
            Task { await self.appendLoop() },
            Task { await self.tailLoop() },
            Task { await self.listenLoop() },
            Task { await self.readIndexLoop() },
            Task { await self.leaseHolderLoop() },
            Task { await self.tickLoop() },
            Task { await self.leaseRenewalLoop() },
        ]
        state.withLock { $0.tasks = tasks }
    }

    // MARK: ReplicatedLog

    public func propose(_ request: ApplyRequest, size: Int, complete: @escaping ApplyCompletion) {
        let deadline = ContinuousClock.now + Self.requestTimeout
        let number: UInt64? = state.withLock { s in
            if s.stopped { return nil }
            defer { s.nextProposal &+= 1 }
            return s.nextProposal
        }
        guard let number else { return complete(.failure(.stopped)) }
        let bytes: [UInt8]
        do { bytes = try EntryCodec.encode(request, proposal: number) } catch { return complete(.failure(error)) }
        let queued: Bool = state.withLock { s in
            if s.stopped { return false }
            s.queued.append(Proposal(proposal: number, bytes: bytes))
            s.queuedBytes += bytes.count
            s.waiting[number] = Waiter(deadline: deadline, complete: complete)
            return true
        }
        if queued { appendBell.ring() } else { complete(.failure(.stopped)) }
    }

    public func waitForReadIndex(_ ready: @escaping @Sendable (EtcdError?) -> Void) {
        let reader = Reader(target: 0, deadline: ContinuousClock.now + Self.requestTimeout, ready: ready)
        let stopped = state.withLock { s in
            if !s.stopped { s.readsWithoutIndex.append(reader) }
            return s.stopped
        }
        if stopped { return ready(.stopped) }
        readBell.ring()
    }

    public func stop() {
        let (tasks, waiters, readers) = state.withLock { s in
            s.stopped = true
            let out = (s.tasks, Array(s.waiting.values), s.readsWithoutIndex + s.readsWaitingApply)
            s.tasks = []
            s.waiting = [:]
            s.queued = []
            s.readsWithoutIndex = []
            s.readsWaitingApply = []
            return out
        }
        for t in tasks { t.cancel() }
        membership.stop()
        for w in waiters { w.complete(.failure(.stopped)) }
        for r in readers { r.ready(.stopped) }
        for bell in [appendBell, tailBell, readBell] { bell.ring() }
    }

    var stopped: Bool { state.withLock { $0.stopped } }

    // MARK: connections

    /// Longest a call to PostgreSQL may take before its connection is given up.
    static let callLimit: Duration = .seconds(5)

    /// Runs `body` on a connection kept across calls in `connection`, within `callLimit`; a
    /// failure or timeout drops the connection (the next call reconnects, to whichever server
    /// is writable then) and is rethrown.
    func withConnection<T: Sendable>(_ connection: inout PostgresConnection?, id: Int,
                                             _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        // A query written to a connection whose server went away is never answered (postgres-nio
        // drops the write): one known closed is replaced at once, not after `callLimit`.
        if let c = connection, c.isClosed { connection = nil }
        if connection == nil {
            // The writable server (after a failover, the promoted standby): WritableConnection.swift.
            let url = url, logger = logger
            connection = try await withDeadline(url.connectLimit) { try await url.connectWritable(id: id, logger: logger) }
        }
        guard let c = connection else { throw SharedLogError.unreachable(url.description, "no connection") }
        do {
            return try await withDeadline(Self.callLimit) { try await body(c) }
        } catch {
            connection = nil
            let _: EventLoopFuture<Void> = c.close()
            throw error
        }
    }

    func pause(_ d: Duration) async {
        try? await Task.sleep(for: d)
    }

    // MARK: appending

    private func appendLoop() async {
        var connection: PostgresConnection?
        var lastError = ""
        while !stopped {
            let batch: [Proposal] = state.withLock { s in
                var n = 0, bytes = 0
                while n < s.queued.count && n < Self.maxEntriesPerAppend
                        && (n == 0 || bytes + s.queued[n].bytes.count <= Self.maxBytesPerAppend) {
                    bytes += s.queued[n].bytes.count
                    n += 1
                }
                let b = Array(s.queued.prefix(n))
                s.queued.removeFirst(n)
                s.queuedBytes -= bytes
                return b
            }
            if batch.isEmpty {
                await appendBell.wait()
                continue
            }
            do {
                try await withConnection(&connection, id: 1) { [self] c in try await append(batch, on: c) }
                lastError = ""
                tailBell.ring()
            } catch {
                // The outcome is unknown (the commit may have happened): the waiters stay; the
                // tailer completes those that were committed, the rest time out.
                let text = "\(String(reflecting: error))"
                if text != lastError { logger.warning("appending to the shared log failed", metadata: ["error": "\(text)"]) }
                lastError = text
                await pause(.milliseconds(200))
            }
        }
        if let connection { let _: EventLoopFuture<Void> = connection.close() }
    }

    /// One transaction: head += n, the n entries numbered (old head, new head], NOTIFY.
    private func append(_ batch: [Proposal], on c: PostgresConnection) async throws {
        let n = Int64(batch.count)
        let entries = batch.map { ByteBuffer(bytes: $0.bytes) }
        let rows = try await c.query("""
            WITH h AS (UPDATE rusd_head SET last = last + \(n) WHERE id = 1 RETURNING last),
            ins AS (INSERT INTO rusd_log (idx, member, entry)
                    SELECT h.last - \(n) + e.ord, \(name), e.entry
                    FROM h, unnest(\(entries)::bytea[]) WITH ORDINALITY AS e(entry, ord))
            SELECT h.last, pg_notify('\(unescaped: LogSchema.channel)', h.last::text)::text FROM h
            """, logger: logger)
        for try await _ in rows {}
    }

    // MARK: tailing

    private struct Row: Sendable {
        var idx: Int64
        var member: String
        var entry: ByteBuffer
    }

    private func tailLoop() async {
        var connection: PostgresConnection?
        var fed = applier.appliedIndex
        while !stopped {
            do {
                let from = Int64(clamping: fed), logger = logger
                let rows: [Row] = try await withConnection(&connection, id: 2) { c in
                    var out: [Row] = []
                    // A row with idx = -through comes first when the log was trimmed past us.
                    let q = try await c.query("""
                        (SELECT idx, member, entry FROM rusd_log WHERE idx > \(from) ORDER BY idx LIMIT 512)
                        UNION ALL (SELECT -through, '', ''::bytea FROM rusd_trimmed WHERE id = 1 AND through > \(from))
                        ORDER BY idx LIMIT 512
                        """, logger: logger)
                    for try await row in q {
                        let (idx, member, entry) = try row.decode((Int64, String, ByteBuffer).self)
                        out.append(Row(idx: idx, member: member, entry: entry))
                    }
                    return out
                }
                for row in rows {
                    let idx = row.idx, member = row.member, buffer = row.entry
                    if idx <= 0 {
                        // Trimmed past this member's applied index: never skip, re-bootstrap.
                        let through = UInt64(-max(idx, -Int64.max))
                        logger.error("the shared log was trimmed past this member's applied index; it must catch up from the newest snapshot",
                                     metadata: ["next-index": "\(fed + 1)", "trimmed-through": "\(through)"])
                        trimmedPast?(fed + 1, through)
                        return
                    }
                    guard UInt64(idx) == fed + 1 else {
                        // Trimmed below us or a gap: never apply out of order (docs/cluster.md).
                        logger.critical("the shared log does not continue this member's applied entries", metadata: [
                            "expected-index": "\(fed + 1)", "found-index": "\(idx)"])
                        return
                    }
                    let decoded: (proposal: UInt64, request: ApplyRequest)
                    do {
                        decoded = try EntryCodec.decode(Array(buffer.readableBytesView))
                    } catch {
                        logger.critical("cannot apply the shared log", metadata: ["error": "\(error)", "index": "\(idx)"])
                        return
                    }
                    let waiter: ApplyCompletion? = member == name
                        ? state.withLock { $0.waiting.removeValue(forKey: decoded.proposal)?.complete } : nil
                    let accepted = applier.apply(index: UInt64(idx), request: decoded.request, size: buffer.readableBytes) { [self] result in
                        waiter?(result)
                        answerReads()
                    }
                    guard accepted else {
                        // Stopped (the applier failed the entry's completion itself) or a
                        // broken order, which must never be papered over.
                        if !stopped { logger.critical("the applier refused shared log entry \(idx)") }
                        return
                    }
                    fed = UInt64(idx)
                }
                if rows.count < 512 { await tailBell.wait() }
            } catch {
                await pause(.milliseconds(200))
            }
        }
        if let connection { let _: EventLoopFuture<Void> = connection.close() }
    }

    /// Keeps a LISTEN open; each NOTIFY wakes the tailer.
    private func listenLoop() async {
        while !stopped {
            do {
                let url = url, logger = logger
                let c = try await withDeadline(url.connectLimit) { try await url.connectWritable(id: 3, logger: logger) }
                do {
                    try await c.listen(on: LogSchema.channel) { notifications in
                        for try await _ in notifications { tailBell.ring() }
                    }
                } catch {}
                try? await c.close()
            } catch {}
            await pause(.milliseconds(200))
        }
    }

    /// Rings the tailer (polling fallback) and fails what waited past its deadline.
    private func tickLoop() async {
        while !stopped {
            await pause(.milliseconds(100))
            tailBell.ring()
            let now = ContinuousClock.now
            let (waiters, readers) = state.withLock { s in
                var late: [Waiter] = []
                for (p, w) in s.waiting where w.deadline < now {
                    late.append(w)
                    s.waiting[p] = nil
                }
                var lateReads = s.readsWaitingApply.filter { $0.deadline < now }
                s.readsWaitingApply.removeAll { $0.deadline < now }
                lateReads += s.readsWithoutIndex.filter { $0.deadline < now }
                s.readsWithoutIndex.removeAll { $0.deadline < now }
                return (late, lateReads)
            }
            for w in waiters { w.complete(.failure(.timeout)) }
            for r in readers { r.ready(.timeout) }
        }
    }

    // MARK: read index

    private func readIndexLoop() async {
        var connection: PostgresConnection?
        while !stopped {
            let readers: [Reader] = state.withLock { s in
                let r = s.readsWithoutIndex
                s.readsWithoutIndex = []
                return r
            }
            if readers.isEmpty {
                await readBell.wait()
                continue
            }
            do {
                let logger = logger
                let head: Int64 = try await withConnection(&connection, id: 4) { c in
                    var last: Int64 = 0
                    for try await row in try await c.query("SELECT last FROM rusd_head WHERE id = 1", logger: logger) {
                        last = try row.decode(Int64.self)
                    }
                    return last
                }
                let target = UInt64(max(head, 0))
                state.withLock { s in
                    for var r in readers {
                        r.target = target
                        s.readsWaitingApply.append(r)
                    }
                }
                answerReads()
            } catch {
                // Retried until each read's deadline (tickLoop fails them then).
                state.withLock { s in s.readsWithoutIndex = readers + s.readsWithoutIndex }
                await pause(.milliseconds(100))
            }
        }
        if let connection { let _: EventLoopFuture<Void> = connection.close() }
    }

    /// Answers the reads whose read index this member has applied.
    private func answerReads() {
        let applied = applier.appliedIndex
        let ready: [Reader] = state.withLock { s in
            if s.readsWaitingApply.isEmpty { return [] }
            let r = s.readsWaitingApply.filter { $0.target <= applied }
            if !r.isEmpty { s.readsWaitingApply.removeAll { $0.target <= applied } }
            return r
        }
        for r in ready { r.ready(nil) }
    }

    // MARK: lease holder and membership

    /// Every second: try to take (or keep) the lease-holder advisory lock, and record this
    /// member's heartbeat and applied index in `rusd_members`.
    private func leaseHolderLoop() async {
        var connection: PostgresConnection?
        var holder = false
        while !stopped {
            do {
                let tryLock = !holder, logger = logger, name = name, memberID = Int64(bitPattern: memberID)
                let handOver = holder && membership.handOverRequested, membership = membership
                let urls = clientURLs.joined(separator: ","), applied = Int64(clamping: applier.durableAppliedIndex)
                let got: Bool = try await withConnection(&connection, id: 5) { c in
                    var got = false
                    if handOver {
                        try await membership.releaseLeadership(on: c, logger: logger)
                    } else if tryLock {
                        got = try await membership.tryTakeLeadership(on: c, logger: logger)
                    }
                    // The heartbeat (the row is made at join): an UPDATE, so a removed member's row stays gone.
                    try await c.query("""
                        UPDATE rusd_members SET client_urls = \(urls), applied = \(applied), heartbeat = now()
                        WHERE name = \(name) AND member_id = \(memberID)
                        """, logger: logger)
                    return got
                }
                if handOver {
                    holder = false
                    isLeaseHolder.store(false, ordering: .relaxed)
                    applier.setLeaseExpiry(false)
                    logger.info("handed the lease-holder (leader) role over (MoveLeader)", metadata: ["name": "\(name)"])
                }
                if got {
                    holder = true
                    isLeaseHolder.store(true, ordering: .relaxed)
                    applier.setLeaseExpiry(true)
                    renewals.publish(applier.leaseDeadlines())   // the refreshed deadlines, to every member
                    logger.info("this member now decides lease expiry for the cluster", metadata: ["name": "\(name)"])
                }
            } catch {
                membership.leadershipLost()
                if holder {
                    holder = false
                    isLeaseHolder.store(false, ordering: .relaxed)
                    applier.setLeaseExpiry(false)
                    logger.warning("lost the lease-holder role (shared log unreachable)", metadata: ["error": "\(error)"])
                }
            }
            await pause(.seconds(1))
        }
        if let connection { let _: EventLoopFuture<Void> = connection.close() }
    }
}
