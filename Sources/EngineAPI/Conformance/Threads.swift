#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private final class ThreadBody: @unchecked Sendable {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Starts `body` on a new OS thread and returns the thread (join or detach it). A plain
/// pthread: Foundation's `Thread` would link all of Foundation and ICU into every process.
package func startThread(_ body: @escaping () -> Void) -> pthread_t {
    let box = Unmanaged.passRetained(ThreadBody(body))
    #if canImport(Glibc)
    var thread = pthread_t()
    #else
    var thread: pthread_t?
    #endif
    let rc = pthread_create(&thread, nil, { arg in
        Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue().run()
        return nil
    }, box.toOpaque())
    precondition(rc == 0, "pthread_create failed: \(rc)")
    #if canImport(Glibc)
    return thread
    #else
    return thread!
    #endif
}

/// Runs each body on its own OS thread (not a pool: bodies may wait for each other), joins
/// them all, and rethrows the first error any of them threw.
package func runOnThreads(_ bodies: [@Sendable () throws -> Void]) throws {
    let errors = EngineLocked<[any Error]>([])
    let threads = bodies.map { body in
        startThread { do { try body() } catch { errors.withLock { $0.append(error) } } }
    }
    for thread in threads { pthread_join(thread, nil) }
    if let first = errors.withLock({ $0.first }) { throw first }
}

/// Monotonic milliseconds.
package func monotonicMilliseconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) * 1000 + Double(ts.tv_nsec) / 1_000_000
}

/// Monotonic seconds, for intervals and stall accounting.
package func monotonicSeconds() -> Double { monotonicMilliseconds() / 1000 }
