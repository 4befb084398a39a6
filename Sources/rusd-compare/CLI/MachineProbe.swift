#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Collects the facts printed in the report header.
enum MachineProbe {
    static func collect(workDir: String, rusdBinary: String?, etcdBinary: String?, etcdctlBinary: String?) -> MachineFacts {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown"
        var uts = utsname()
        uname(&uts)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let kernel = "\(field(uts.sysname)) \(field(uts.release)) \(field(uts.machine))"
        let (p50, p99) = fdatasyncLatency(in: workDir)
        var libraries: [String: String] = [:]
        for package in ["liblmdb0", "libleveldb1d", "libsqlite3-0", "librocksdb7.8"] {
            if let out = try? Subprocess.run("/usr/bin/dpkg-query", ["-W", "-f=${Version}", package]), out.succeeded {
                libraries[package] = out.stdout
            } else {
                libraries[package] = "not installed"
            }
        }
        return MachineFacts(hostname: hostname(), cpuModel: model, cores: ProcessInfo.processInfo.activeProcessorCount,
                            memoryBytes: Int64(ProcessInfo.processInfo.physicalMemory), kernel: kernel,
                            workDir: workDir, workDirFilesystem: filesystem(of: workDir),
                            fdatasyncP50Ms: p50, fdatasyncP99Ms: p99,
                            rusdVersion: rusdBinary.flatMap { firstLine(of: $0, ["--version"]) },
                            etcdVersion: etcdBinary.flatMap { firstLine(of: $0, ["--version"]) },
                            etcdctlVersion: etcdctlBinary.flatMap { Etcdctl.version(binary: $0) },
                            engineLibraries: libraries)
    }

    static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `binary args` first output line, e.g. "etcd Version: 3.4.23".
    static func firstLine(of binary: String, _ arguments: [String]) -> String? {
        guard let out = try? Subprocess.run(binary, arguments), out.succeeded else { return nil }
        let text = out.stdout.isEmpty ? out.stderr : out.stdout
        return text.split(separator: "\n").first.map { String($0).trimmingCharacters(in: .whitespaces) }
    }

    /// write(4 KiB) + fdatasync, 100 times, in a file under `dir`; p50 and p99 in ms.
    static func fdatasyncLatency(in dir: String) -> (Double, Double) {
        let path = "\(dir)/fdatasync-probe-\(getpid())"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return (-1, -1) }
        defer { close(fd); unlink(path) }
        let block = [UInt8](repeating: 0x5a, count: 4096)
        var histogram = LatencyHistogram()
        for _ in 0..<100 {
            let t0 = monotonicNanos()
            _ = block.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            fdatasync(fd)
            histogram.recordSince(t0)
        }
        let summary = histogram.summary()
        return (summary.p50Ms, summary.p99Ms)
    }

    /// "ext4 on /dev/vda" for the mount holding `path` (longest matching mount point).
    static func filesystem(of path: String) -> String {
        guard let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return "unknown" }
        var best = ("", "unknown")
        for line in mounts.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count >= 3 else { continue }
            let mountPoint = String(f[1])
            let matches = path == mountPoint || path.hasPrefix(mountPoint.hasSuffix("/") ? mountPoint : mountPoint + "/")
            if matches && mountPoint.count >= best.0.count { best = (mountPoint, "\(f[2]) on \(f[0]) (\(mountPoint))") }
        }
        return best.1
    }
}
