import EtcdServer
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// Keep-alive on any member (docs/cluster.md, "Leases").
///
/// A keep-alive renews a lease in the memory of the member that received it. For the member
/// deciding expiry (the lease holder) to see it, and for every member to answer
/// LeaseTimeToLive alike, each member runs one statement per tick (`renewalTick`) that
///
/// 1. upserts the renewals made here since the last tick into `rusd_lease_renewals`
///    (`expires` = PostgreSQL's clock + what is left of the lease here, never moved back), and
/// 2. reads back the renewals written by anyone in the last few seconds (every live one after
///    a (re)connection), plus those of the leases the holder is about to revoke,
///
/// and moves the local deadlines forward accordingly. Deadlines cross members as "this many
/// milliseconds from now" measured on PostgreSQL's clock, so members' clocks need not agree.
/// Before proposing revokes, the holder's expiry check waits for the next tick
/// (`confirmExpired`): a lease renewed anywhere up to one tick before its deadline is kept.
/// A member with no lease and nothing to send skips the statement.
extension PostgresLog {
    static let renewalTick: Duration = .milliseconds(200)
    /// Renewals read back on every tick: those written this recently (covers ticks delayed by
    /// slow statements; older ones were read by an earlier tick).
    static let renewalWindowSeconds = 3
    /// The holder deletes renewals that ended this long ago, at most every 30 s.
    static let renewalRetentionSeconds = 60

    public func leaseRenewed(_ id: Int64, ttl: Int64) {
        renewals.renewed(id, ttl: ttl)
    }

    public func confirmExpired(_ ids: [Int64], revoke: @escaping @Sendable ([Int64]) -> Void) {
        if stopped {
            applier.leaseExpiryDeferred(ids)
            return revoke([])
        }
        renewals.confirm(ids, revoke)
    }

    func leaseRenewalLoop() async {
        var connection: PostgresConnection?
        var readAll = true
        var lastCleanup = ContinuousClock.now
        var lastError = ""
        while !stopped {
            await pause(Self.renewalTick)
            if stopped { break }
            let (pending, confirms) = renewals.take()
            if pending.isEmpty && confirms.isEmpty && applier.hasNoLeases { continue }
            let now = ContinuousClock.now
            var ids: [Int64] = [], milliseconds: [Int64] = []
            for (id, until) in pending {
                let left = LeaseRenewalQueue.milliseconds(until - now)
                if left > 0 {
                    ids.append(id)
                    milliseconds.append(left)
                }
            }
            let checked = confirms.flatMap(\.ids)
            let cleanup = applier.decidesLeaseExpiry && now - lastCleanup > .seconds(30)
            do {
                let ids = ids, milliseconds = milliseconds
                let all = readAll, logger = logger, window = "\(Self.renewalWindowSeconds) seconds"
                let retention = "\(Self.renewalRetentionSeconds) seconds"
                let rows: [(id: Int64, remainingMilliseconds: Int64)] = try await withConnection(&connection, id: 6) { c in
                    var out: [(id: Int64, remainingMilliseconds: Int64)] = []
                    let q = try await c.query("""
                        WITH up AS (
                            INSERT INTO rusd_lease_renewals AS r (id, expires, written)
                            SELECT u.id, clock_timestamp() + u.ms * interval '1 millisecond', clock_timestamp()
                            FROM unnest(\(ids)::bigint[], \(milliseconds)::bigint[]) AS u(id, ms)
                            ON CONFLICT (id) DO UPDATE SET expires = GREATEST(r.expires, EXCLUDED.expires),
                                written = EXCLUDED.written
                            RETURNING r.id)
                        SELECT id, (EXTRACT(EPOCH FROM expires - clock_timestamp()) * 1000)::bigint
                        FROM rusd_lease_renewals
                        WHERE (\(all) OR written > now() - \(window)::interval OR id = ANY(\(checked)::bigint[]))
                            AND expires > clock_timestamp()
                        """, logger: logger)
                    for try await row in q {
                        let (id, left) = try row.decode((Int64, Int64).self)
                        out.append((id, left))
                    }
                    if cleanup {
                        try await c.query("""
                            DELETE FROM rusd_lease_renewals WHERE expires < now() - \(retention)::interval
                            """, logger: logger)
                    }
                    return out
                }
                readAll = false
                lastError = ""
                if cleanup { lastCleanup = now }
                let alive = applier.leasesRenewedElsewhere(rows)
                for confirm in confirms {
                    confirm.revoke(confirm.ids.filter { !alive.contains($0) })
                }
            } catch {
                // Unknown whether the upsert happened: send the renewals again; the leases about
                // to expire are checked again at the next expiry check.
                readAll = true
                renewals.putBack(pending)
                for confirm in confirms {
                    applier.leaseExpiryDeferred(confirm.ids)
                    confirm.revoke([])
                }
                let text = "\(String(reflecting: error))"
                if text != lastError { logger.warning("exchanging lease renewals with the shared log failed", metadata: ["error": "\(text)"]) }
                lastError = text
            }
        }
        if let connection { let _: EventLoopFuture<Void> = connection.close() }
    }
}

/// Renewals made on this member and expiry checks, waiting for the next tick's statement.
/// Thread-safe; `renewed` is called once per keep-alive, so it only updates a dictionary.
final class LeaseRenewalQueue: Sendable {
    struct Confirm: Sendable {
        var ids: [Int64]
        var revoke: @Sendable ([Int64]) -> Void
    }
    private struct State {
        /// Lease → until when it lives after the latest renewal made here.
        var pending: [Int64: ContinuousClock.Instant] = [:]
        var confirms: [Confirm] = []
    }
    private let state = Mutex(State())

    func renewed(_ id: Int64, ttl: Int64) {
        let until = ContinuousClock.now + .seconds(min(max(ttl, 0), 9_000_000_000))
        state.withLock { s in
            if let old = s.pending[id], old >= until { return }
            s.pending[id] = until
        }
    }

    /// Deadlines set here by other means (taking over expiry refreshes them all).
    func publish(_ deadlines: [(id: Int64, milliseconds: Int64)]) {
        let now = ContinuousClock.now
        state.withLock { s in
            for d in deadlines {
                let until = now + .milliseconds(min(max(d.milliseconds, 0), 9_000_000_000_000))
                if let old = s.pending[d.id], old >= until { continue }
                s.pending[d.id] = until
            }
        }
    }

    func confirm(_ ids: [Int64], _ revoke: @escaping @Sendable ([Int64]) -> Void) {
        state.withLock { $0.confirms.append(Confirm(ids: ids, revoke: revoke)) }
    }

    func take() -> (pending: [Int64: ContinuousClock.Instant], confirms: [Confirm]) {
        state.withLock { s in
            defer { s.pending = [:]; s.confirms = [] }
            return (s.pending, s.confirms)
        }
    }

    /// Renewals whose statement failed, merged with newer ones.
    func putBack(_ pending: [Int64: ContinuousClock.Instant]) {
        state.withLock { s in
            s.pending.merge(pending) { max($0, $1) }
        }
    }

    /// Whole milliseconds of `d`, 0 when negative.
    static func milliseconds(_ d: Duration) -> Int64 {
        let c = d.components
        if c.seconds < 0 { return 0 }
        return c.seconds * 1000 + c.attoseconds / 1_000_000_000_000_000
    }
}
