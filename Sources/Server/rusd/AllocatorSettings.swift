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
