import Dispatch
import EtcdServer
import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// Cluster mode's membership (`ClusterMembership`), kept in the shared log's database as table
/// rows (`MemberSchema`; docs/cluster.md says why rows and not log entries).
///
/// - `join` (startup, before the member serves): takes the session lock on the member's name
///   (refused while another live process holds it), then in one transaction finds the member's
///   ID (its row's, an added member's with the same peer URLs, or the one derived from name and
///   cluster ID) and refuses an ID that was removed.
/// - A loop (every 500 ms, on the connection holding the name lock) refreshes the leader row
///   and the log head for Status, and notices this member's removal (`onRemoved`).
/// - Member changes and MemberList run on a connection of their own, one per call.
/// - The leader role itself is taken and released by `PostgresLog`'s lease-holder loop through
///   `tryTakeLeadership` / `releaseLeadership` (PostgresMembership+Leader.swift).
public final class PostgresMembership: ClusterMembership {
    public let memberID: UInt64
    let url: SharedLogURL
    let name: String
    let logger: Logger
    let onRemoved: @Sendable () -> Void
    /// This member holds the leader role / a MoveLeader asked it to hand the role over.
    let holding = Atomic<Bool>(false)
    let handOver = Atomic<Bool>(false)
    let cached = Mutex(ClusterLeadership())
    private let stopped = Atomic<Bool>(false)

    init(memberID: UInt64, url: SharedLogURL, name: String, logger: Logger, onRemoved: @escaping @Sendable () -> Void) {
        self.memberID = memberID
        self.url = url
        self.name = name
        self.logger = logger
        self.onRemoved = onRemoved
    }

    public var leadership: ClusterLeadership { cached.withLock { $0 } }
    public var isLeader: Bool { holding.load(ordering: .relaxed) }

    public func stop() { stopped.store(true, ordering: .relaxed) }

    // MARK: joining

    /// Registers the member named `name` (blocking; startup only). `derivedID` is its ID when
    /// neither its row nor an added member says otherwise. Fails when another live process holds
    /// the name, when the member was removed, or when PostgreSQL cannot be used.
    public static func join(url: SharedLogURL, name: String, derivedID: UInt64, peerURLs: [String], clientURLs: [String],
                            logger: Logger, onRemoved: @escaping @Sendable () -> Void) throws(MembershipError) -> PostgresMembership {
        let result = Mutex<Result<PostgresMembership, MembershipError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let r: Result<PostgresMembership, MembershipError>
            do {
                let (membership, connection) = try await joining(url: url, name: name, derivedID: derivedID, peerURLs: peerURLs,
                                                                 clientURLs: clientURLs, logger: logger, onRemoved: onRemoved)
                Task { await membership.refreshLoop(connection) }
                r = .success(membership)
            } catch let e as MembershipError {
                r = .failure(e)
            } catch {
                r = .failure(.unreachable(url.description, SharedLogStart.describe(error)))
            }
            result.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        guard let r = result.withLock({ $0 }) else { throw .unreachable(url.description, "no answer") }
        return try r.get()
    }

    private static func joining(url: SharedLogURL, name: String, derivedID: UInt64, peerURLs: [String], clientURLs: [String],
                                logger: Logger, onRemoved: @escaping @Sendable () -> Void) async throws -> (PostgresMembership, PostgresConnection) {
        let c = try await withDeadline(url.connectLimit) { try await url.connectWritable(id: 6, logger: logger) }
        do {
            // A process killed a moment ago may still hold the lock until PostgreSQL notices its
            // closed socket: retry for a few seconds before calling the name taken.
            var locked = false
            for attempt in 0 ..< 12 {
                if attempt > 0 { try await Task.sleep(for: .milliseconds(250)) }
                locked = try await withDeadline(PostgresLog.callLimit) { try await lockName(c, name: name, logger: logger) }
                if locked { break }
            }
            if !locked {
                var holder = (clientURLs: "", age: -1.0)
                for try await row in try await c.query("""
                    SELECT client_urls, extract(epoch FROM now() - heartbeat)::float8 FROM rusd_members WHERE name = \(name)
                    """, logger: logger) {
                    holder = try row.decode((String, Double).self)
                }
                throw MembershipError.nameTaken(url: url.description, name: name, clientURLs: holder.clientURLs,
                                                heartbeatAge: holder.age)
            }
            let id: UInt64 = try await withDeadline(PostgresLog.callLimit) {
                try await register(c, url: url.description, name: name, derivedID: derivedID, peerURLs: peerURLs,
                                   clientURLs: clientURLs, logger: logger)
            }
            return (PostgresMembership(memberID: id, url: url, name: name, logger: logger, onRemoved: onRemoved), c)
        } catch {
            try? await c.close()
            throw error
        }
    }

    /// Takes the session lock on `name` (true) unless another session holds it (false).
    static func lockName(_ c: PostgresConnection, name: String, logger: Logger) async throws -> Bool {
        var got = false
        for try await row in try await c.query("SELECT pg_try_advisory_lock(\(MemberSchema.nameLockKey), hashtext(\(name)))",
                                               logger: logger) {
            got = try row.decode(Bool.self)
        }
        return got
    }

    /// The member's ID after recording it as started. Without a row of its own or an added
    /// member to take, a name or derived ID that was removed is refused (`MembershipError.removed`).
    private static func register(_ c: PostgresConnection, url: String, name: String, derivedID: UInt64, peerURLs: [String],
                                 clientURLs: [String], logger: Logger) async throws -> UInt64 {
        try await MemberSchema.changing(c, logger: logger, ensuringTables: true) {
            var id: Int64?
            for try await row in try await c.query("SELECT member_id FROM rusd_members WHERE name = \(name)", logger: logger) {
                id = try row.decode(Int64.self)
            }
            let peers = MemberSchema.urlText(peerURLs), clients = clientURLs.joined(separator: ",")
            if let id {
                // A restart: the ID and peer URLs recorded stay (etcd takes them from its store).
                try await c.query("UPDATE rusd_members SET client_urls = \(clients), heartbeat = now() WHERE name = \(name)",
                                  logger: logger)
                return UInt64(bitPattern: id)
            }
            var claimed: Int64?
            for try await row in try await c.query("""
                DELETE FROM rusd_added WHERE member_id = (SELECT member_id FROM rusd_added WHERE peer_urls = \(peers)
                    ORDER BY added LIMIT 1) RETURNING member_id
                """, logger: logger) {
                claimed = try row.decode(Int64.self)
            }
            let newID = claimed ?? Int64(bitPattern: derivedID)
            if claimed == nil {
                for try await row in try await c.query("""
                    SELECT member_id FROM rusd_removed WHERE member_id = \(newID) OR name = \(name) LIMIT 1
                    """, logger: logger) {
                    throw MembershipError.removed(url: url, name: name, id: UInt64(bitPattern: try row.decode(Int64.self)))
                }
            }
            try await c.query("""
                INSERT INTO rusd_members (name, member_id, client_urls, peer_urls, applied, heartbeat)
                VALUES (\(name), \(newID), \(clients), \(peers), 0, now())
                """, logger: logger)
            return UInt64(bitPattern: newID)
        }
    }

    // MARK: refreshing

    /// Every 500 ms: the leader row and log head for Status; this member's removal. Keeps the
    /// name lock on its connection (taken again after a reconnect).
    private func refreshLoop(_ first: PostgresConnection) async {
        var connection: PostgresConnection? = first
        var holdsName = true, nameWarned = false, removedSeen = false
        let me = Int64(bitPattern: memberID), logger = logger, name = name
        while !stopped.load(ordering: .relaxed) {
            do {
                if let c = connection, c.isClosed { connection = nil }     // see PostgresLog.withConnection
                if connection == nil {
                    let url = url
                    connection = try await withDeadline(url.connectLimit) { try await url.connectWritable(id: 6, logger: logger) }
                    holdsName = false
                }
                guard let c = connection else { continue }
                if !holdsName {
                    holdsName = try await withDeadline(PostgresLog.callLimit) { try await Self.lockName(c, name: name, logger: logger) }
                    if !holdsName && !nameWarned {
                        // Only after a reconnect (PostgreSQL restarted) can another process have taken it.
                        logger.error("another process holds this member's name in the shared log", metadata: ["name": "\(name)"])
                    }
                    nameWarned = !holdsName
                }
                let row: (Int64, Int64, Int64, Bool)? = try await withDeadline(PostgresLog.callLimit) {
                    var out: (Int64, Int64, Int64, Bool)?
                    for try await r in try await c.query("""
                        SELECT l.member_id, l.epoch, h.last, EXISTS (SELECT 1 FROM rusd_removed WHERE member_id = \(me))
                        FROM rusd_leader l, rusd_head h WHERE l.id = 1 AND h.id = 1
                        """, logger: logger) {
                        out = try r.decode((Int64, Int64, Int64, Bool).self)
                    }
                    return out
                }
                if let row {
                    let (leader, epoch, head, removed) = row
                    cached.withLock {
                        $0 = ClusterLeadership(leaderID: UInt64(bitPattern: leader), term: UInt64(max(epoch, 0)),
                                               committedIndex: UInt64(max(head, 0)))
                    }
                    if removed && !removedSeen {
                        removedSeen = true
                        logger.error("the member has been permanently removed from the cluster",
                                     metadata: ["name": "\(name)", "member-id": "\(String(memberID, radix: 16))"])
                        onRemoved()
                    }
                }
            } catch {
                if let c = connection { let _: EventLoopFuture<Void> = c.close() }
                connection = nil
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
        if let connection { let _: EventLoopFuture<Void> = connection.close() }
    }

    // MARK: calls

    /// Runs `body` on a connection of its own (membership calls are rare), within `limit`.
    /// PostgreSQL errors become etcd's "request timed out"; `EtcdError`s pass through.
    func withOwnConnection<T: Sendable>(limit: Duration = PostgresLog.callLimit,
                                        _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws(EtcdError) -> T {
        let url = url, logger = logger
        do {
            return try await withDeadline(limit) {
                let c = try await url.connectWritable(id: 7, logger: logger)
                do {
                    let r = try await body(c)
                    try? await c.close()
                    return r
                } catch {
                    try? await c.close()
                    throw error
                }
            }
        } catch let e as EtcdError {
            throw e
        } catch {
            logger.warning("a membership call to the shared log failed", metadata: ["error": "\(error)"])
            throw .timeout
        }
    }

    private func answer<T: Sendable>(_ done: @escaping @Sendable (Result<T, EtcdError>) -> Void,
                                     _ body: @escaping @Sendable (PostgresConnection) async throws -> T) {
        Task {
            do throws(EtcdError) { done(.success(try await withOwnConnection(body))) } catch { done(.failure(error)) }
        }
    }

    public func listMembers(_ done: @escaping @Sendable (Result<[ClusterMember], EtcdError>) -> Void) {
        let logger = logger
        answer(done) { c in try await MemberSchema.members(c, logger: logger) }
    }

    public func addMember(peerURLs: [String], _ done: @escaping @Sendable (Result<(added: ClusterMember, members: [ClusterMember]), EtcdError>) -> Void) {
        guard MemberSchema.validPeerURLs(peerURLs) else { return done(.failure(.memberBadURLs)) }
        let logger = logger, wanted = Set(peerURLs)
        answer(done) { c in
            try await MemberSchema.changing(c, logger: logger) {
                let members = try await MemberSchema.members(c, logger: logger)
                if members.contains(where: { !wanted.isDisjoint(with: $0.peerURLs) }) { throw EtcdError.peerURLExists }
                var id = UInt64.random(in: 1 ... UInt64.max)
                while members.contains(where: { $0.id == id }) {
                    id = UInt64.random(in: 1 ... UInt64.max)
                }
                if try await MemberSchema.isRemoved(c, id: id, logger: logger) { throw EtcdError.timeout }  // 2^-64: retry
                try await c.query("""
                    INSERT INTO rusd_added (member_id, peer_urls) VALUES (\(Int64(bitPattern: id)), \(MemberSchema.urlText(peerURLs)))
                    """, logger: logger)
                let added = ClusterMember(id: id, name: "", peerURLs: peerURLs.sorted(), clientURLs: [])
                return (added: added, members: (members + [added]).sorted { $0.id < $1.id })
            }
        }
    }

    public func removeMember(id: UInt64, _ done: @escaping @Sendable (Result<[ClusterMember], EtcdError>) -> Void) {
        let logger = logger, key = Int64(bitPattern: id)
        answer(done) { c in
            try await MemberSchema.changing(c, logger: logger) {
                let members = try await MemberSchema.members(c, logger: logger)
                guard let target = members.first(where: { $0.id == id }) else { throw EtcdError.memberNotFound }
                let started = members.filter { !$0.name.isEmpty }
                if !target.name.isEmpty && started.count <= 1 { throw EtcdError.notEnoughStartedMembers }
                try await c.query("""
                    INSERT INTO rusd_removed (member_id, name) VALUES (\(key), \(target.name)) ON CONFLICT (member_id) DO NOTHING
                    """, logger: logger)
                try await c.query("DELETE FROM rusd_members WHERE member_id = \(key)", logger: logger)
                try await c.query("DELETE FROM rusd_added WHERE member_id = \(key)", logger: logger)
                return members.filter { $0.id != id }
            }
        }
    }

    public func updateMember(id: UInt64, peerURLs: [String], _ done: @escaping @Sendable (Result<[ClusterMember], EtcdError>) -> Void) {
        guard MemberSchema.validPeerURLs(peerURLs) else { return done(.failure(.memberBadURLs)) }
        let logger = logger, key = Int64(bitPattern: id), wanted = Set(peerURLs), text = MemberSchema.urlText(peerURLs)
        answer(done) { c in
            try await MemberSchema.changing(c, logger: logger) {
                var members = try await MemberSchema.members(c, logger: logger)
                guard let at = members.firstIndex(where: { $0.id == id }) else { throw EtcdError.memberNotFound }
                if members.contains(where: { $0.id != id && !wanted.isDisjoint(with: $0.peerURLs) }) { throw EtcdError.peerURLExists }
                try await c.query("UPDATE rusd_members SET peer_urls = \(text) WHERE member_id = \(key)", logger: logger)
                try await c.query("UPDATE rusd_added SET peer_urls = \(text) WHERE member_id = \(key)", logger: logger)
                members[at].peerURLs = peerURLs.sorted()
                return members
            }
        }
    }
}

/// Why a member cannot join the cluster (startup; the process exits with the message).
public enum MembershipError: Error, Sendable, CustomStringConvertible {
    case unreachable(String, String)
    case nameTaken(url: String, name: String, clientURLs: String, heartbeatAge: Double)
    case removed(url: String, name: String, id: UInt64)

    public var description: String {
        switch self {
        case .unreachable(let url, let why): "cannot use the shared log at \(url): \(why)"
        case .nameTaken(let url, let name, let clients, let age):
            "the member name \"\(name)\" is taken by a live member of the cluster at \(url)"
                + (age >= 0 && age < 1e9 ? " (client URLs \(clients.isEmpty ? "none" : clients), last heartbeat \(Int(age * 1000)) ms ago)" : "")
                + ": give this member another --name, or stop that member first"
        case .removed(let url, let name, let id):
            "the member has been permanently removed from the cluster (member \"\(name)\", ID \(String(id, radix: 16)), shared log \(url)); "
                + "to bring it back, add it again (etcdctl member add \(name) --peer-urls=<its --initial-advertise-peer-urls>) and start it on an empty data dir"
        }
    }
}
