#if canImport(Glibc)
import Glibc
#endif

/// The process figures Prometheus' process collector exports (and etcd with it), read from
/// /proc/self at each scrape: `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_virtual_memory_max_bytes`, `process_open_fds`,
/// `process_max_fds`, `process_start_time_seconds`; etcd's own `os_fd_used` / `os_fd_limit`;
/// and rusd's runtime figure in place of Go's: `rusd_process_threads` (go_threads).
/// A figure that cannot be read (no /proc) is left out rather than reported as 0.
struct ProcessMetrics {
    var cpuSeconds: Double?
    var residentBytes: Double?
    var virtualBytes: Double?
    var virtualMaxBytes: Double?
    var openFDs: Int?
    var maxFDs: Double?
    var startTimeSeconds: Double?
    var threads: Int?

    /// Reads the current figures.
    static func read() -> ProcessMetrics {
        var m = ProcessMetrics()
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        let pageSize = Double(sysconf(Int32(_SC_PAGESIZE)))
        if let stat = readSmallFile("/proc/self/stat"), let close = stat.lastIndex(of: ")") {
            // Fields after "pid (comm)": state is field 3; utime 14, stime 15, num_threads 20,
            // starttime 22, vsize 23, rss 24 (proc(5)).
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            func field(_ n: Int) -> Double? { n - 3 < fields.count ? Double(fields[n - 3]) : nil }
            if ticks > 0, let user = field(14), let system = field(15) { m.cpuSeconds = (user + system) / ticks }
            m.threads = field(20).flatMap { Int(exactly: $0) }
            m.virtualBytes = field(23)
            if let rss = field(24), pageSize > 0 { m.residentBytes = rss * pageSize }
            if ticks > 0, let start = field(22), let boot = bootTimeSeconds() { m.startTimeSeconds = boot + start / ticks }
        }
        m.openFDs = countFDs()
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 { m.maxFDs = Double(limit.rlim_cur) }
        if getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0 { m.virtualMaxBytes = Double(limit.rlim_cur) }
        return m
    }

    /// The families in Prometheus text format (HELP texts as Prometheus' and etcd's).
    func text() -> String {
        var out = ""
        func one(_ name: String, _ type: String, _ help: String, _ value: Double?) {
            guard let value else { return }
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(PrometheusMetrics.number(value))\n"
        }
        one("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpuSeconds)
        one("process_max_fds", "gauge", "Maximum number of open file descriptors.", maxFDs)
        one("process_open_fds", "gauge", "Number of open file descriptors.", openFDs.map(Double.init))
        one("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", residentBytes)
        one("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.", startTimeSeconds)
        one("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", virtualBytes)
        one("process_virtual_memory_max_bytes", "gauge", "Maximum amount of virtual memory available in bytes.", virtualMaxBytes)
        one("os_fd_used", "gauge", "The number of used file descriptors.", openFDs.map(Double.init))
        one("os_fd_limit", "gauge", "The file descriptor limit.", maxFDs)
        one("rusd_process_threads", "gauge", "Number of OS threads of the rusd process (rusd's figure in place of go_threads).",
            threads.map(Double.init))
        return out
    }

    /// System boot time (the `btime` line of /proc/stat), in seconds since the epoch.
    private static func bootTimeSeconds() -> Double? {
        guard let stat = readSmallFile("/proc/stat") else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingPrefix(while: { $0 == " " }))
        }
        return nil
    }

    /// Entries of /proc/self/fd (the directory's own descriptor included, as Prometheus' Go
    /// collector counts).
    private static func countFDs() -> Int? {
        guard let dir = opendir("/proc/self/fd") else { return nil }
        defer { closedir(dir) }
        var n = 0
        while let entry = readdir(dir) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { name in
                name[0] == UInt8(ascii: ".") && (name[1] == 0 || name[1] == UInt8(ascii: ".") && name[2] == 0)
            }
            if !isDot { n += 1 }
        }
        return n
    }

    /// A small /proc file's text (at most 64 KiB), or nil when it cannot be read.
    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 65536 {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { return nil }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
