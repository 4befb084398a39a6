import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Gives free heap pages back to the system after connections closed. glibc returns only the
/// free top of each heap by itself, and raises its mmap threshold to the largest block freed,
/// so what a client made the server allocate stays in the process after it went: 2,000 idle
/// connections (about 28 KiB each) left the RSS 56 MiB up, a zero-window client that made
/// the server queue 32 MiB of responses per connection 130 MiB (Tests/compat/test_abuse.py).
/// (A fixed mmap threshold also gave the large blocks back, but mapped and unmapped every
/// response over 128 KiB, which doubled the Range p99 of other clients under that attack.)
/// Checks every 2 s; trims (`malloc_trim(0)`, a few milliseconds on a background queue) when
/// connections closed since the last check. Keep the returned timer.
func trimHeapAfterConnectionsClose(closedConnections: @escaping @Sendable () -> Int) -> any DispatchSourceTimer {
    typealias MallocTrim = @convention(c) (Int) -> Int32
    let trim = dlsym(nil, "malloc_trim").map { unsafeBitCast($0, to: MallocTrim.self) }
    let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
    let seen = ClosedCount()
    timer.setEventHandler {
        let closed = closedConnections()
        if closed != seen.value, let trim {
            _ = trim(0)
        }
        seen.value = closed
    }
    timer.schedule(deadline: .now() + 2, repeating: 2)
    timer.resume()
    return timer
}

/// Closed connections at the last check; touched only by one timer's handler (a dispatch
/// source runs its handler serially), hence `@unchecked Sendable`.
private final class ClosedCount: @unchecked Sendable {
    var value = 0
}
