#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private final class ThreadBody: @unchecked Sendable {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Runs each body on its own OS thread (not a pool: bodies may wait for each other), joins
/// them all, and rethrows the first error any of them threw.
package func runOnThreads(_ bodies: [@Sendable () throws -> Void]) throws {
    let errors = EngineLocked<[any Error]>([])
    var threads: [pthread_t] = []
    for body in bodies {
        let box = Unmanaged.passRetained(ThreadBody {
            do { try body() } catch { errors.withLock { $0.append(error) } }
        })
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
        threads.append(thread)
        #else
        threads.append(thread!)
        #endif
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
