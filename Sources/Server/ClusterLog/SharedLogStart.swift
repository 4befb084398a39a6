import Dispatch
import Logging
import PostgresNIO
import Synchronization

/// What a member learns from the shared log before it serves.
public struct SharedLogInfo: Sendable {
    /// The cluster ID recorded at the log's creation (reported in every response header).
    public var clusterID: UInt64
    /// The index of the newest committed entry when the member started.
    public var head: UInt64
}

public enum SharedLogStart {
    /// How long a start waits for a writable server when none answers (down, refusing, starting
    /// up, or only standbys: a failover in progress) before giving up.
    static let startWait: Duration = .seconds(5)

    /// Connects to the writable server, creates the schema on first use and checks its version
    /// and its tables. Blocks the caller (startup only). Fails with a message naming the URL:
    /// at once when PostgreSQL refuses us for good (wrong password, no such database, a schema
    /// that is not ours or is newer), after `startWait` when no server is writable.
    public static func open(_ url: SharedLogURL, logger: Logger) throws(SharedLogError) -> SharedLogInfo {
        let result = Mutex<Result<SharedLogInfo, SharedLogError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let r = await opening(url, logger: logger)
            result.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        guard let r = result.withLock({ $0 }) else { throw .unreachable(url.description, "no answer") }
        return try r.get()
    }

    private static func opening(_ url: SharedLogURL, logger: Logger) async -> Result<SharedLogInfo, SharedLogError> {
        let giveUp = ContinuousClock.now + startWait
        var warned = false
        while true {
            let c: PostgresConnection
            do {
                c = try await withDeadline(url.connectLimit) { try await url.connectWritable(id: 0, logger: logger) }
            } catch {
                // No writable server, or no answer in time: wait unless PostgreSQL refused us for good.
                let permanent = (error as? NoWritableServer)?.permanent ?? false
                if permanent || ContinuousClock.now >= giveUp {
                    let why = error is NoWritableServer ? "\(error)" : describe(error)
                    let waited = permanent ? "" : " (gave up after \(startWait.components.seconds) s)"
                    return .failure(.unreachable(url.description, why + waited))
                }
                if !warned {
                    logger.warning("waiting for a writable PostgreSQL server of the shared log", metadata: [
                        "shared-log": "\(url)", "error": "\(error)"])
                    warned = true
                }
                try? await Task.sleep(for: .milliseconds(250))
                continue
            }
            let ensured: Result<LogSchema.Info, any Error>
            do {
                try await LogSchemaShape.check(c, url: url, existingOnly: true, logger: logger)
                let info = try await LogSchema.ensure(c, url: url, logger: logger)
                try await LogSchemaShape.check(c, url: url, existingOnly: false, logger: logger)
                ensured = .success(info)
            } catch {
                ensured = .failure(error)
            }
            try? await c.close()
            switch ensured {
            case .success(let info): return .success(SharedLogInfo(clusterID: info.clusterID, head: info.head))
            case .failure(let e as SharedLogError): return .failure(e)
            case .failure(let e):
                if let foreign = LogSchemaShape.foreignSchemaMessage(e) {
                    return .failure(.notASharedLog(url: url.description, reason: foreign))
                }
                return .failure(.unreachable(url.description, describe(e)))
            }
        }
    }

    /// A PostgreSQL error's server message when there is one (wrong password, no database, ...).
    static func describe(_ error: any Error) -> String {
        if let p = error as? PSQLError {
            if let message = p.serverInfo?[.message] { return message }
            if p.code == .authMechanismRequiresPassword {
                return "the server asks for a password and --shared-log gives none (postgres://user:password@host/db)"
            }
            if let underlying = p.underlying { return "\(p.code): \(underlying)" }
            return "\(p.code)"
        }
        return "\(error)"
    }
}
