import Logging
import PostgresNIO

/// The shared log's tables (docs/cluster.md has the ordering argument):
///
/// - `rusd_meta`: one row, the schema version and the cluster ID every member reports.
/// - `rusd_head`: one row, `last` = the index of the newest committed entry. Appenders update
///   it in the same transaction as their inserts, so its row lock orders their commits.
/// - `rusd_log`: the entries, `idx` 2, 3, … with no gaps (index 1 is the bootstrap every
///   member's store starts with, as in etcd).
/// - `rusd_members`: each member's name, ID, client URLs, applied index and last heartbeat.
/// - `rusd_lease_renewals` (version 2): per lease renewed by a keep-alive on any member, until
///   when (PostgreSQL's clock) it lives and when that was written.
/// - `rusd_trimmed` (version 3): one row, `through` = every entry at or below it may be gone
///   from `rusd_log` (1 until the first trim).
/// - `rusd_snapshots`, `rusd_snapshot_chunks` (version 3): snapshots of a member's store in
///   etcd's format, each covering the log up to its `idx`, stored as numbered chunks
///   (PostgresSnapshots.swift).
///
/// Versions: 2 added `rusd_lease_renewals` and auth-change entries (kind 7); 3 added snapshots
/// and trimming (a version-2 member would stop at the first trimmed entry). A log of an older
/// version is upgraded in place (only additions) by the first member of this version that
/// opens it; a newer one is refused.
enum LogSchema {
    static let version: Int32 = 3
    /// The oldest version this rusd upgrades in place.
    static let oldestUpgradable: Int32 = 1
    /// Advisory lock keys: creating the schema, and the lease-holder role.
    static let schemaLockKey: Int64 = 0x7275_7364_0001
    static let leaseHolderLockKey: Int64 = 0x7275_7364_0002
    /// NOTIFY channel rung by every append (at its commit).
    static let channel = "rusd_log"

    struct Info: Sendable {
        var clusterID: UInt64
        var head: UInt64
    }

    /// Creates the tables on first use (serialized by an advisory lock, so members starting
    /// together agree on one cluster ID) and checks the schema version.
    static func ensure(_ c: PostgresConnection, url: SharedLogURL, logger: Logger) async throws -> Info {
        try await c.query("BEGIN", logger: logger)
        do {
            try await c.query("SELECT pg_advisory_xact_lock(\(schemaLockKey))", logger: logger)
            try await c.query("""
                CREATE TABLE IF NOT EXISTS rusd_meta (id int PRIMARY KEY CHECK (id = 1), schema_version int NOT NULL,
                    cluster_id bigint NOT NULL, created timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            try await c.query("CREATE TABLE IF NOT EXISTS rusd_head (id int PRIMARY KEY CHECK (id = 1), last bigint NOT NULL)",
                              logger: logger)
            try await c.query("CREATE TABLE IF NOT EXISTS rusd_log (idx bigint PRIMARY KEY, member text NOT NULL, entry bytea NOT NULL)",
                              logger: logger)
            try await c.query("""
                CREATE TABLE IF NOT EXISTS rusd_members (name text PRIMARY KEY, member_id bigint NOT NULL,
                    client_urls text NOT NULL, applied bigint NOT NULL, heartbeat timestamptz NOT NULL)
                """, logger: logger)
            try await c.query("""
                CREATE TABLE IF NOT EXISTS rusd_lease_renewals (id bigint PRIMARY KEY, expires timestamptz NOT NULL,
                    written timestamptz NOT NULL)
                """, logger: logger)
            try await c.query("CREATE INDEX IF NOT EXISTS rusd_lease_renewals_written ON rusd_lease_renewals (written)",
                              logger: logger)
            try await c.query("CREATE TABLE IF NOT EXISTS rusd_trimmed (id int PRIMARY KEY CHECK (id = 1), through bigint NOT NULL)",
                              logger: logger)
            try await c.query("INSERT INTO rusd_trimmed (id, through) VALUES (1, 1) ON CONFLICT (id) DO NOTHING", logger: logger)
            try await c.query("""
                CREATE TABLE IF NOT EXISTS rusd_snapshots (id bigint PRIMARY KEY, idx bigint NOT NULL, revision bigint NOT NULL,
                    bytes bigint NOT NULL, chunks int NOT NULL, member text NOT NULL, created timestamptz NOT NULL DEFAULT now())
                """, logger: logger)
            var chunksExist = false
            for try await row in try await c.query("SELECT to_regclass('rusd_snapshot_chunks') IS NOT NULL", logger: logger) {
                chunksExist = try row.decode(Bool.self)
            }
            if !chunksExist {
                try await c.query("""
                    CREATE TABLE rusd_snapshot_chunks (snapshot bigint NOT NULL REFERENCES rusd_snapshots (id) ON DELETE CASCADE,
                        seq int NOT NULL, data bytea NOT NULL, PRIMARY KEY (snapshot, seq))
                    """, logger: logger)
                // Stored as written (no pglz pass over every megabyte). Only at creation: an
                // ALTER would wait for a snapshot upload in progress.
                try await c.query("ALTER TABLE rusd_snapshot_chunks ALTER COLUMN data SET STORAGE EXTERNAL", logger: logger)
            }
            let newClusterID = Int64.random(in: 1 ... Int64.max)
            try await c.query("""
                INSERT INTO rusd_meta (id, schema_version, cluster_id) VALUES (1, \(version), \(newClusterID))
                ON CONFLICT (id) DO NOTHING
                """, logger: logger)
            try await c.query("INSERT INTO rusd_head (id, last) VALUES (1, 1) ON CONFLICT (id) DO NOTHING", logger: logger)
            var found: (Int32, Int64)?
            for try await row in try await c.query("SELECT schema_version, cluster_id FROM rusd_meta WHERE id = 1", logger: logger) {
                found = try row.decode((Int32, Int64).self)
            }
            var head: Int64 = 0
            for try await row in try await c.query("SELECT last FROM rusd_head WHERE id = 1", logger: logger) {
                head = try row.decode(Int64.self)
            }
            guard let (schema, clusterID) = found else {
                throw SharedLogError.unreachable(url.description, "rusd_meta has no row")
            }
            guard schema == version || (oldestUpgradable ..< version).contains(schema) else {
                throw SharedLogError.incompatibleSchema(url: url.description, found: schema, supported: version)
            }
            if schema != version {
                // The tables of the newer version were created above.
                try await c.query("UPDATE rusd_meta SET schema_version = \(version) WHERE id = 1", logger: logger)
                logger.notice("upgraded the shared log's schema", metadata: ["from": "\(schema)", "to": "\(version)"])
            }
            try await c.query("COMMIT", logger: logger)
            return Info(clusterID: UInt64(bitPattern: clusterID), head: UInt64(max(head, 0)))
        } catch {
            _ = try? await c.query("ROLLBACK", logger: logger)
            throw error
        }
    }
}
