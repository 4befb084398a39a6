import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Makes glibc give large freed blocks back to the system: blocks of 128 KiB and more (large
/// responses and requests) get mappings of their own, unmapped when freed. By default glibc
/// raises this threshold to the largest block freed so far, and such buffers then come from
/// arenas it rarely trims: a client that made the server queue 130 MiB of responses left the
/// RSS 130 MiB up after it was disconnected (Tests/compat/test_abuse.py, zero_window); with
/// the threshold fixed it comes back down. No effect on other C libraries.
func fixMallocMmapThreshold() {
    #if canImport(Glibc)
    // mallopt is declared in <malloc.h>, which the Glibc module does not export.
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    let M_MMAP_THRESHOLD: Int32 = -3
    guard let symbol = dlsym(nil, "mallopt") else { return }
    _ = unsafeBitCast(symbol, to: Mallopt.self)(M_MMAP_THRESHOLD, 128 * 1024)
    #endif
}

/// Gives free heap pages back to the system after many connections closed. glibc returns only
/// the free top of each heap by itself; the per-connection blocks (HTTP/2 session, buffers,
/// about 28 KiB each) are small and interleaved with live ones, so 2,000 idle connections
/// left the RSS 56 MiB up after they went (Tests/compat/test_abuse.py, idle_connections).
/// Checks every 2 s; trims (`malloc_trim(0)`, a few milliseconds on a background queue) when
/// at least `threshold` connections closed since the last check. Keep the returned timer.
func trimHeapAfterConnectionsClose(connectionCount: @escaping @Sendable () -> Int,
                                   threshold: Int = 256) -> any DispatchSourceTimer {
    typealias MallocTrim = @convention(c) (Int) -> Int32
    let trim = dlsym(nil, "malloc_trim").map { unsafeBitCast($0, to: MallocTrim.self) }
    let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
    let peak = PeakCount()
    timer.setEventHandler {
        let count = connectionCount()
        peak.value = max(peak.value, count)
        if peak.value - count >= threshold, let trim {
            _ = trim(0)
            peak.value = count
        }
    }
    timer.schedule(deadline: .now() + 2, repeating: 2)
    timer.resume()
    return timer
}

/// The most connections seen since the last trim; touched only by one timer's handler (a
/// dispatch source runs its handler serially), hence `@unchecked Sendable`.
private final class PeakCount: @unchecked Sendable {
    var value = 0
}
