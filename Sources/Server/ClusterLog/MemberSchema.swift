import EtcdServer
import Logging
import PostgresNIO

/// The membership and leader tables next to the log's (docs/cluster.md, "Membership and leader").
/// Additive to schema version 1 (created with IF NOT EXISTS by the first member that needs them):
///
/// - `rusd_members` (LogSchema) gains `peer_urls`: a started member's row, keyed by name.
/// - `rusd_added`: members recorded by MemberAdd that have not started yet (ID, peer URLs); the
///   member that starts with exactly those peer URLs takes the ID and moves into `rusd_members`.
/// - `rusd_removed`: IDs removed by MemberRemove; a member with one of them never serves again.
/// - `rusd_leader`: one row, the member holding the leader (lease-expiry) role, an epoch that
///   grows at every take-over (Status's raft term) and a pending MoveLeader's target.
enum MemberSchema {
    /// Advisory lock key serializing membership changes (MemberAdd/Remove/Update, joining).
    static let changeLockKey: Int64 = 0x7275_7364_0003
    /// First key of the session-level lock a running member holds on its name (the second is
    /// `hashtext(name)`), so two live processes never serve under one name.
    static let nameLockKey: Int32 = 0x7275_7364

    /// Creates what is missing; inside a transaction (serialized with LogSchema's by its lock).
    static func ensure(_ c: PostgresConnection, logger: Logger) async throws {
        try await c.query("SELECT pg_advisory_xact_lock(\(LogSchema.schemaLockKey))", logger: logger)
        try await c.query("ALTER TABLE rusd_members ADD COLUMN IF NOT EXISTS peer_urls text NOT NULL DEFAULT ''", logger: logger)
        try await c.query("""
            CREATE TABLE IF NOT EXISTS rusd_added (member_id bigint PRIMARY KEY, peer_urls text NOT NULL,
                added timestamptz NOT NULL DEFAULT now())
            """, logger: logger)
        try await c.query("""
            CREATE TABLE IF NOT EXISTS rusd_removed (member_id bigint PRIMARY KEY, name text NOT NULL,
                removed timestamptz NOT NULL DEFAULT now())
            """, logger: logger)
        try await c.query("""
            CREATE TABLE IF NOT EXISTS rusd_leader (id int PRIMARY KEY CHECK (id = 1), member_id bigint NOT NULL,
                epoch bigint NOT NULL, transfer_to bigint, transfer_until timestamptz)
            """, logger: logger)
        try await c.query("INSERT INTO rusd_leader (id, member_id, epoch) VALUES (1, 0, 1) ON CONFLICT (id) DO NOTHING",
                          logger: logger)
    }

    /// Runs `body` inside a transaction holding the membership-change lock (after creating the
    /// tables when `ensuringTables`); rolls back on error.
    static func changing<T: Sendable>(_ c: PostgresConnection, logger: Logger, ensuringTables: Bool = false,
                                      _ body: () async throws -> T) async throws -> T {
        try await c.query("BEGIN", logger: logger)
        do {
            if ensuringTables { try await ensure(c, logger: logger) }
            try await c.query("SELECT pg_advisory_xact_lock(\(changeLockKey))", logger: logger)
            let result = try await body()
            try await c.query("COMMIT", logger: logger)
            return result
        } catch {
            _ = try? await c.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    /// Every member in ID order: started (`rusd_members`) and added-not-started (`rusd_added`).
    static func members(_ c: PostgresConnection, logger: Logger) async throws -> [ClusterMember] {
        var out: [ClusterMember] = []
        let rows = try await c.query("""
            SELECT member_id, name, peer_urls, client_urls FROM rusd_members
            UNION ALL SELECT member_id, '', peer_urls, '' FROM rusd_added
            """, logger: logger)
        for try await row in rows {
            let (id, name, peers, clients) = try row.decode((Int64, String, String, String).self)
            out.append(ClusterMember(id: UInt64(bitPattern: id), name: name, peerURLs: urlList(peers), clientURLs: urlList(clients)))
        }
        return out.sorted { $0.id < $1.id }
    }

    static func isRemoved(_ c: PostgresConnection, id: UInt64, logger: Logger) async throws -> Bool {
        var removed = false
        let rows = try await c.query("SELECT EXISTS (SELECT 1 FROM rusd_removed WHERE member_id = \(Int64(bitPattern: id)))",
                                     logger: logger)
        for try await row in rows { removed = try row.decode(Bool.self) }
        return removed
    }

    /// URLs as stored: sorted, comma-separated (etcd keeps peer URLs sorted too).
    static func urlText(_ urls: [String]) -> String { urls.sorted().joined(separator: ",") }
    static func urlList(_ text: String) -> [String] { text.split(separator: ",").map(String.init) }

    /// etcd's check of member URLs (types.NewURLs): at least one; each scheme://host:port with
    /// scheme http, https, unix or unixs, a numeric port and no path.
    static func validPeerURLs(_ urls: [String]) -> Bool {
        if urls.isEmpty { return false }
        for u in urls {
            guard let sep = u.range(of: "://") else { return false }
            let scheme = u[..<sep.lowerBound], rest = u[sep.upperBound...]
            guard ["http", "https", "unix", "unixs"].contains(scheme), !rest.isEmpty, !rest.contains("/"),
                  let colon = rest.lastIndex(of: ":") else { return false }
            let host = rest[..<colon], port = rest[rest.index(after: colon)...]
            guard !host.isEmpty, !port.isEmpty, port.count <= 5, port.allSatisfy({ $0.isASCII && $0.isNumber }) else { return false }
        }
        return true
    }
}
