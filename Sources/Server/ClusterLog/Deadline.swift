import Synchronization

/// A PostgreSQL call that did not answer in time (its connection is then dropped).
struct DeadlineExceeded: Error, CustomStringConvertible {
    var description: String { "the shared log did not answer in time" }
}

/// Runs `operation` but returns (throwing `DeadlineExceeded`) after `limit` even if the
/// operation never finishes: a query on a connection whose server went away can stay pending
/// forever, and a tailer or appender stuck on it would stop the member for good. The caller
/// drops the connection; the abandoned task ends when the connection's close fails it.
func withDeadline<T: Sendable>(_ limit: Duration, _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let first = FirstResult<T>()
    return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        first.set(continuation)
        let work = Task {
            do { first.finish(.success(try await operation())) } catch { first.finish(.failure(error)) }
        }
        Task {
            try? await Task.sleep(for: limit)
            work.cancel()
            first.finish(.failure(DeadlineExceeded()))
        }
    }
}

/// Resumes a continuation once, with whichever result comes first.
private final class FirstResult<T: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)

    func set(_ c: CheckedContinuation<T, any Error>) {
        continuation.withLock { $0 = c }
    }

    func finish(_ result: Result<T, any Error>) {
        let c: CheckedContinuation<T, any Error>? = continuation.withLock { c in
            defer { c = nil }
            return c
        }
        c?.resume(with: result)
    }
}
