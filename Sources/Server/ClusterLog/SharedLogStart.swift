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
    /// Connects once, creates the schema on first use and checks its version. Blocks the
    /// caller (startup only); fails with a message naming the URL within a few seconds.
    public static func open(_ url: SharedLogURL, logger: Logger) throws(SharedLogError) -> SharedLogInfo {
        let result = Mutex<Result<SharedLogInfo, SharedLogError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let r: Result<SharedLogInfo, SharedLogError>
            do {
                let c = try await PostgresConnection.connect(configuration: url.configuration, id: 0, logger: logger)
                let ensured: Result<LogSchema.Info, any Error>
                do { ensured = .success(try await LogSchema.ensure(c, url: url, logger: logger)) } catch { ensured = .failure(error) }
                try? await c.close()
                let info = try ensured.get()
                r = .success(SharedLogInfo(clusterID: info.clusterID, head: info.head))
            } catch let e as SharedLogError {
                r = .failure(e)
            } catch {
                r = .failure(.unreachable(url.description, describe(error)))
            }
            result.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        guard let r = result.withLock({ $0 }) else { throw .unreachable(url.description, "no answer") }
        return try r.get()
    }

    /// A PostgreSQL error's server message when there is one (wrong password, no database, ...).
    static func describe(_ error: any Error) -> String {
        if let p = error as? PSQLError {
            if let message = p.serverInfo?[.message] { return message }
            if let underlying = p.underlying { return "\(p.code): \(underlying)" }
            return "\(p.code)"
        }
        return "\(error)"
    }
}
