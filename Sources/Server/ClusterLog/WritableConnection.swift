import Logging
import PostgresNIO

/// Connecting to the writable server of the shared log (libpq's `target_session_attrs=read-write`):
/// every connection rusd makes to PostgreSQL (appending, tailing, LISTEN, read index, lease and
/// membership calls) goes through `connectWritable`, at start and after any failure, so a member
/// follows a failover (primary stopped, a synchronous standby promoted) without a restart.
extension SharedLogURL {
    /// A connection to a server that is neither in recovery (a standby) nor read-only. Tries the
    /// servers in order, starting with the one found writable last; each gets 3 s to connect.
    /// Throws `NoWritableServer` with every server's reason when none is writable.
    func connectWritable(id: Int, logger: Logger) async throws -> PostgresConnection {
        let start = lastWritable.value
        var attempts: [NoWritableServer.Attempt] = []
        for k in 0 ..< servers.count {
            let i = (start + k) % servers.count, server = servers[i]
            let c: PostgresConnection
            do {
                c = try await PostgresConnection.connect(configuration: configuration(server), id: id, logger: logger)
            } catch {
                attempts.append(.init(server: server, error: error))
                continue
            }
            do {
                if let why = try await Self.notWritable(c, logger: logger) {
                    try? await c.close()
                    attempts.append(.init(server: server, reason: why))
                    continue
                }
            } catch {
                try? await c.close()
                attempts.append(.init(server: server, error: error))
                continue
            }
            if i != start && servers.count > 1 {
                logger.notice("using the writable PostgreSQL server of the shared log", metadata: [
                    "server": "\(server)", "before": "\(servers[start])"])
            }
            lastWritable.set(i)
            return c
        }
        throw NoWritableServer(attempts: attempts, several: servers.count > 1)
    }

    /// nil when `c`'s server takes writes; else why not.
    private static func notWritable(_ c: PostgresConnection, logger: Logger) async throws -> String? {
        var answer: (Bool, String)?
        for try await row in try await c.query("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')",
                                               logger: logger) {
            answer = try row.decode((Bool, String).self)
        }
        guard let (recovering, readOnly) = answer else { return "it did not say whether it is writable" }
        if recovering { return "it is a standby (in recovery), not the primary" }
        if readOnly == "on" { return "it is read-only (default_transaction_read_only = on)" }
        return nil
    }
}

/// No server of the shared log took writes; `description` names each server's reason.
struct NoWritableServer: Error, CustomStringConvertible {
    struct Attempt {
        var server: SharedLogURL.Server
        var reason: String
        /// PostgreSQL refused us for a reason a retry does not change (password, database, ...).
        var permanent = false

        init(server: SharedLogURL.Server, reason: String) {
            self.server = server
            self.reason = reason
        }

        init(server: SharedLogURL.Server, error: any Error) {
            self.server = server
            reason = SharedLogStart.describe(error)
            permanent = Self.isPermanent(error)
        }

        /// Errors PostgreSQL answered that waiting will not cure. Transient: no answer at all
        /// (refused, reset, timeout), and the server's "starting up / shutting down / too many
        /// connections" (SQLSTATE class 57, 53300).
        static func isPermanent(_ error: any Error) -> Bool {
            guard let p = error as? PSQLError else { return false }
            if p.code == .authMechanismRequiresPassword || p.code == .unsupportedAuthMechanism { return true }
            guard let state = p.serverInfo?[.sqlState] else { return false }
            return !(state.hasPrefix("57") || state == "53300")
        }
    }

    var attempts: [Attempt]
    var several: Bool

    /// A server refused us for good (wrong password, no such database): retrying cannot help.
    var permanent: Bool { attempts.contains(where: \.permanent) }

    var description: String {
        if !several, let only = attempts.first { return only.reason }
        return "no PostgreSQL server takes writes: " + attempts.map { "\($0.server): \($0.reason)" }.joined(separator: "; ")
    }
}
