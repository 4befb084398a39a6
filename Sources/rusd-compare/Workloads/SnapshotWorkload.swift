import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Snapshot save and restore (issue 18), every target in the same run: fills N keys
/// (1,000,000; 50,000 quick) of 256-byte values in Txns of 100 puts, then updates every 10th
/// key twice (history: 1.2 N versions). Then `etcdctl snapshot save` streams
/// Maintenance.Snapshot through the client port (the server's peak RSS is measured from the
/// start of the save), and the file is restored with the target's own tool: `etcdctl snapshot
/// restore` for etcd, `rusd snapshot restore --engine E` for rusd (wall time, CPU and peak RSS
/// of the restoring process, from wait4). The restore runs while the server idles; external
/// endpoints are saved but not restored (their tool is unknown).
struct SnapshotWorkload: Workload {
    let name = "snapshot"
    let summary = "etcdctl snapshot save through the client port, then the target's own restore: 1,000,000 keys of 256 B with history (50,000 quick)"
    let needsPersistentClient = true

    static let valueBytes = 256

    func run(_ context: WorkloadContext) async throws -> WorkloadResult {
        guard let server = context.server else { throw SubprocessError(description: "no server") }
        let keys = context.quick ? 50_000 : 1_000_000
        var result = WorkloadResult()
        let folder = server.dataDir.map { ($0 as NSString).deletingLastPathComponent }
            ?? (context.launcher.workDir + "/snapshot-\(server.spec.name)")
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let file = folder + "/snapshot.db"
        defer { try? FileManager.default.removeItem(atPath: file) }

        context.progress.begin("  \(name) on \(context.spec.name): fill", total: keys + keys / 5)
        let fillStart = monotonicNanos()
        let revision = try await fill(context, keys: keys)
        result.metrics["fill_s"] = secondsSince(fillStart)
        result.metrics["keys"] = Double(keys)
        result.metrics["revision"] = Double(revision)
        context.progress.finish(String(format: "%d keys, revision %lld", keys, revision))

        context.measurementWindow.restart()
        let save = try context.etcdctl.check(["--command-timeout=3600s", "snapshot", "save", file])
        result.metrics["save_s"] = Double(save.elapsedNanos) / 1e9
        let size = fileSize(file) ?? 0
        result.metrics["snapshot_file_bytes"] = Double(size)
        if let pid = server.pid, let stats = ProcessStats.read(pid: pid) {
            result.metrics["save_server_peak_rss_bytes"] = Double(stats.peakRSSBytes)
        }

        let restoreDir = folder + "/restored"
        defer { try? FileManager.default.removeItem(atPath: restoreDir) }
        let command: (String, [String])
        switch context.spec.launch {
        case .rusd(let binary, let engine):
            command = (binary, ["snapshot", "restore", file, "--data-dir", restoreDir, "--engine", engine])
        case .etcd:
            let peer = "http://127.0.0.1:\(try freeLoopbackPort())"
            command = (context.etcdctlBinary, ["snapshot", "restore", file, "--data-dir", restoreDir, "--name", "restored",
                                               "--initial-cluster", "restored=\(peer)", "--initial-advertise-peer-urls", peer])
        case .external:
            result.note = "external endpoint: saved, not restored"
            return result
        case .rusdCluster, .etcdCluster:
            result.note = "cluster: saved from one member, not restored"
            return result
        }
        let restore = try Self.measure(command.0, command.1, log: folder + "/restore.log")
        guard restore.status == 0 else {
            throw SubprocessError(description: "\(command.0) snapshot restore failed (exit \(restore.status)): \(Self.tail(folder + "/restore.log"))")
        }
        // rusd prints the restored store's revision: it must be the one saved.
        if case .rusd = context.spec.launch, !Self.tail(folder + "/restore.log").contains("revision \(revision),") {
            throw SubprocessError(description: "restore reports another revision than \(revision): \(Self.tail(folder + "/restore.log"))")
        }
        result.metrics["restore_s"] = restore.seconds
        result.metrics["restore_cpu_s"] = restore.cpuSeconds
        result.metrics["restore_peak_rss_bytes"] = restore.peakRSSBytes
        result.metrics["restored_disk_bytes"] = Double(diskUsageBytes(of: restoreDir))
        context.progress.note(String(format: "   save %.2f s (%.0f MB), restore %.2f s, restore peak RSS %.0f MiB",
                                     Double(save.elapsedNanos) / 1e9, Double(size) / 1e6, restore.seconds,
                                     restore.peakRSSBytes / 1_048_576))
        return result
    }

    private static func key(_ i: Int) -> [UInt8] { Array(String(format: "/registry/pods/ns-%d/pod-%07d", i % 100, i).utf8) }

    /// Puts every key once in Txns of 100 (16 workers), then every 10th key twice more; returns
    /// the revision after the last write.
    private func fill(_ context: WorkloadContext, keys: Int) async throws -> Int64 {
        let clients = try await context.connect(count: 4)
        do {
            let revision = try await fill(clients, keys: keys, progress: context.progress)
            for c in clients { await c.close() }
            return revision
        } catch {
            for c in clients { await c.close() }
            throw error
        }
    }

    private func fill(_ clients: [any EtcdClient], keys: Int, progress: ProgressReporter) async throws -> Int64 {
        let value = [UInt8](repeating: UInt8(ascii: "v"), count: Self.valueBytes)
        // Pass 0 writes every key; passes 1 and 2 every 10th key.
        for pass in 0..<3 {
            let indices = pass == 0 ? Array(0..<keys) : Array(stride(from: 0, to: keys, by: 10))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<16 {
                    let client = clients[worker % clients.count]
                    group.addTask {
                        var first = worker * 100
                        while first < indices.count {
                            let ops = indices[first..<min(first + 100, indices.count)].map {
                                TxnOp.put(key: Self.key($0), value: value, lease: 0)
                            }
                            _ = try await client.txn(compares: [], success: ops, failure: [])
                            progress.advance(ops.count)
                            first += 16 * 100
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        return try await clients[0].put(key: Self.key(0), value: value, lease: 0)
    }

    struct Usage {
        var status: Int32
        var seconds: Double
        var cpuSeconds: Double
        var peakRSSBytes: Double
    }

    /// Runs a command to completion (output to `log`) and returns its wall time and, from
    /// wait4, its CPU time and peak RSS.
    static func measure(_ executable: String, _ arguments: [String], log: String) throws -> Usage {
        let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw SubprocessError(description: "cannot open \(log)") }
        defer { close(fd) }
        var env = ProcessInfo.processInfo.environment
        env["ETCDCTL_API"] = "3"
        let start = monotonicNanos()
        let pid = try Subprocess.spawn(executable, arguments, stdoutFD: fd, stderrFD: fd, environment: env)
        ChildProcessRegistry.shared.add(pid)
        defer { ChildProcessRegistry.shared.remove(pid) }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw SubprocessError(description: "wait4: \(String(cString: strerror(errno)))") }
        }
        let seconds = secondsSince(start)
        func time(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        let exit = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Usage(status: exit, seconds: seconds, cpuSeconds: time(usage.ru_utime) + time(usage.ru_stime),
                     peakRSSBytes: Double(usage.ru_maxrss) * 1024)
    }

    private static func tail(_ path: String) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "(no output)" }
        return text.split(separator: "\n").suffix(4).joined(separator: "\n")
    }
}
