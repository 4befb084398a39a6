import EtcdServer
import Logging
import PostgresNIO

/// The leader role: the member holding the lease-holder advisory lock (`PostgresLog`'s
/// lease-holder loop takes it on its own connection through these calls) is the cluster's
/// leader. `rusd_leader` records who holds it and an epoch bumped at every take-over (Status's
/// raft term). MoveLeader: the holder records the target in `rusd_leader.transfer_to` (for 5 s),
/// then releases the lock; until then no other member tries to take it, so the target does.
extension PostgresMembership {
    static let transferSeconds = 5

    /// Tries to take the role on `c` (whose session keeps the lock). Abstains while a MoveLeader
    /// to another member is pending. On success records this member and the new epoch.
    func tryTakeLeadership(on c: PostgresConnection, logger: Logger) async throws -> Bool {
        let me = Int64(bitPattern: memberID)
        var got = false
        for try await row in try await c.query("""
            SELECT pg_try_advisory_lock(\(LogSchema.leaseHolderLockKey)) FROM rusd_leader
            WHERE id = 1 AND (transfer_to IS NULL OR transfer_to = \(me) OR transfer_until < now())
            """, logger: logger) {
            got = try row.decode(Bool.self)
        }
        guard got else { return false }
        var epoch: Int64 = 0, head: Int64 = 0
        for try await row in try await c.query("""
            UPDATE rusd_leader SET member_id = \(me), epoch = epoch + 1, transfer_to = NULL, transfer_until = NULL
            WHERE id = 1 RETURNING epoch, (SELECT last FROM rusd_head WHERE id = 1)
            """, logger: logger) {
            (epoch, head) = try row.decode((Int64, Int64).self)
        }
        holding.store(true, ordering: .relaxed)
        handOver.store(false, ordering: .relaxed)
        cached.withLock { $0 = ClusterLeadership(leaderID: memberID, term: UInt64(max(epoch, 0)), committedIndex: UInt64(max(head, 0))) }
        return true
    }

    /// Whether a MoveLeader asked this member (the holder) to release the role.
    var handOverRequested: Bool { holding.load(ordering: .relaxed) && handOver.load(ordering: .relaxed) }

    /// Releases the role on `c`, the connection that took it.
    func releaseLeadership(on c: PostgresConnection, logger: Logger) async throws {
        holding.store(false, ordering: .relaxed)
        handOver.store(false, ordering: .relaxed)
        try await c.query("SELECT pg_advisory_unlock(\(LogSchema.leaseHolderLockKey))", logger: logger)
    }

    /// The holder's session failed (PostgreSQL releases the lock with it).
    func leadershipLost() {
        holding.store(false, ordering: .relaxed)
        handOver.store(false, ordering: .relaxed)
    }

    public func moveLeader(to target: UInt64, _ done: @escaping @Sendable (EtcdError?) -> Void) {
        // etcd: only the leader moves leadership; to itself it is done at once.
        guard isLeader else { return done(.notLeader) }
        if target == memberID { return done(nil) }
        let logger = logger, me = Int64(bitPattern: memberID), to = Int64(bitPattern: target)
        Task {
            do throws(EtcdError) {
                let moved = try await withOwnConnection(limit: .seconds(Self.transferSeconds + 1)) { [self] c in
                    var started = false
                    for try await row in try await c.query("SELECT EXISTS (SELECT 1 FROM rusd_members WHERE member_id = \(to))",
                                                           logger: logger) {
                        started = try row.decode(Bool.self)
                    }
                    guard started else { throw EtcdError.badLeaderTransferee }
                    try await c.query("""
                        UPDATE rusd_leader SET transfer_to = \(to), transfer_until = now() + interval '\(unescaped: "\(Self.transferSeconds) seconds")'
                        WHERE id = 1 AND member_id = \(me)
                        """, logger: logger)
                    handOver.store(true, ordering: .relaxed)
                    logger.info("leadership transfer starting", metadata: ["transferee-member-id": "\(String(target, radix: 16))"])
                    let until = ContinuousClock.now + .seconds(Self.transferSeconds) - .milliseconds(300)
                    while ContinuousClock.now < until {
                        try await Task.sleep(for: .milliseconds(100))
                        for try await row in try await c.query("SELECT member_id, epoch FROM rusd_leader WHERE id = 1", logger: logger) {
                            let (leader, epoch) = try row.decode((Int64, Int64).self)
                            if leader == to {
                                cached.withLock { $0.leaderID = target; $0.term = UInt64(max(epoch, 0)) }
                                return true
                            }
                        }
                    }
                    return false
                }
                done(moved ? nil : .leaderTransferTimeout)
            } catch {
                done(error)
            }
        }
    }
}
