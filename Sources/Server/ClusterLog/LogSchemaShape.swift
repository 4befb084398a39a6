import Logging
import PostgresNIO

/// Checks, at start, that the shared log's tables have the columns this rusd reads and writes:
/// `CREATE TABLE IF NOT EXISTS` keeps a table of the same name that another program made, and
/// a member must refuse such a database at start rather than fail on its first append.
enum LogSchemaShape {
    /// The columns each table must have (name, `information_schema` data type); more are fine.
    static let required: [(table: String, columns: [(String, String)])] = [
        ("rusd_meta", [("id", "integer"), ("schema_version", "integer"), ("cluster_id", "bigint")]),
        ("rusd_head", [("id", "integer"), ("last", "bigint")]),
        ("rusd_log", [("idx", "bigint"), ("member", "text"), ("entry", "bytea")]),
        ("rusd_members", [("name", "text"), ("member_id", "bigint"), ("client_urls", "text"), ("applied", "bigint"),
                          ("heartbeat", "timestamp with time zone")]),
        ("rusd_lease_renewals", [("id", "bigint"), ("expires", "timestamp with time zone"),
                                 ("written", "timestamp with time zone")]),
    ]

    /// Throws `SharedLogError.notASharedLog` naming the first table whose column is missing or
    /// of another type. `existingOnly`: tables that do not exist yet pass (the check before the
    /// schema is created, so that another program's database is refused untouched).
    static func check(_ c: PostgresConnection, url: SharedLogURL, existingOnly: Bool, logger: Logger) async throws {
        var found: [String: [String: String]] = [:]
        for try await row in try await c.query("""
            SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name LIKE 'rusd\\_%'
            """, logger: logger) {
            let (table, column, type) = try row.decode((String, String, String).self)
            found[table, default: [:]][column] = type
        }
        for (table, columns) in required where !existingOnly || found[table] != nil {
            for (column, type) in columns where found[table]?[column] != type {
                let has = found[table]?[column].map { "is of type \($0)" } ?? "is missing"
                throw SharedLogError.notASharedLog(url: url.description, reason: "its table \(table) was not made by rusd (column \(column) \(has), rusd needs \(type))")
            }
        }
    }

    /// PostgreSQL errors of a schema that is not ours, met while creating or reading it: an
    /// unknown column or table, a type mismatch, a constraint of another program's table
    /// (SQLSTATE 42703, 42P01, 42804, 23xxx); nil for anything else.
    static func foreignSchemaMessage(_ error: any Error) -> String? {
        guard let p = error as? PSQLError, let state = p.serverInfo?[.sqlState] else { return nil }
        guard ["42703", "42P01", "42804"].contains(state) || state.hasPrefix("23") else { return nil }
        return p.serverInfo?[.message] ?? state
    }
}
