#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A reading of a live server process from /proc (Linux only).
struct ProcessStats: Sendable {
    /// utime + stime, seconds.
    var cpuSeconds: Double
    /// VmHWM: peak resident set since start (or since the last `resetPeakRSS`).
    var peakRSSBytes: Int64
    /// VmRSS: resident set now.
    var rssBytes: Int64
    /// write_bytes from /proc/PID/io: bytes this process caused to be sent to the storage layer.
    var writeBytes: Int64

    /// Reads the stats of `pid`; nil when the process is gone or /proc is unreadable.
    static func read(pid: pid_t) -> ProcessStats? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        // Fields after the ")" that closes the command name; utime and stime are fields 14 and 15.
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state), so field N is fields[N - 3].
        guard fields.count > 13, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        func kib(_ name: String) -> Int64 {
            for line in status.split(separator: "\n") where line.hasPrefix(name + ":") {
                let parts = line.split(separator: " ", omittingEmptySubsequences: true)
                if parts.count >= 2, let v = Int64(parts[1]) { return v * 1024 }
            }
            return 0
        }
        var writeBytes: Int64 = 0
        if let io = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8) {
            for line in io.split(separator: "\n") where line.hasPrefix("write_bytes:") {
                writeBytes = Int64(line.dropFirst("write_bytes:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            }
        }
        return ProcessStats(cpuSeconds: (utime + stime) / ticks, peakRSSBytes: kib("VmHWM"),
                            rssBytes: kib("VmRSS"), writeBytes: writeBytes)
    }

    /// Resets VmHWM to the current RSS (writes 5 to /proc/PID/clear_refs). Returns false when the
    /// kernel refuses (then the peak covers the whole process lifetime).
    @discardableResult
    static func resetPeakRSS(pid: pid_t) -> Bool {
        let fd = open("/proc/\(pid)/clear_refs", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        return write(fd, "5", 1) == 1
    }
}

/// Disk usage of a directory tree: allocated blocks (what `du` reports), in bytes.
func diskUsageBytes(of path: String) -> Int64 {
    var total: Int64 = 0
    func visit(_ dir: String) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
        for name in entries {
            let full = dir + "/" + name
            var st = stat()
            guard lstat(full, &st) == 0 else { continue }
            total += Int64(st.st_blocks) * 512
            if (st.st_mode & S_IFMT) == S_IFDIR { visit(full) }
        }
    }
    visit(path)
    return total
}

/// A free TCP port on 127.0.0.1 (bound to port 0, read back, released).
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw SubprocessError(description: "socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw SubprocessError(description: "bind: \(String(cString: strerror(errno)))") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
    }
    guard named == 0 else { throw SubprocessError(description: "getsockname failed") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Size of a file in bytes, or nil.
func fileSize(_ path: String) -> Int64? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return Int64(st.st_size)
}

/// True when something accepts TCP connections on 127.0.0.1:`port` (connect, then close).
func loopbackPortAccepts(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = UInt16(port).bigEndian
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}
