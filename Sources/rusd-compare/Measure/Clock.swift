#if canImport(Glibc)
import Glibc
#endif

/// Monotonic time in nanoseconds (CLOCK_MONOTONIC); only differences are meaningful.
func monotonicNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Seconds elapsed since `start` (a `monotonicNanos()` value).
func secondsSince(_ start: UInt64) -> Double {
    Double(monotonicNanos() &- start) / 1e9
}
