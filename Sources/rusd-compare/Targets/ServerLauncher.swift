#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A server started for one workload run (or an external endpoint).
struct RunningServer: Sendable {
    var spec: TargetSpec
    /// Client URL, e.g. http://127.0.0.1:23456.
    var endpoint: String
    /// nil for external endpoints.
    var pid: pid_t?
    var dataDir: String?
    var logPath: String?
    /// Spawn to first successful request, minus one etcdctl call's own cost (ms).
    var startupMs: Double?
    /// Cluster targets: every member (`endpoint` and `pid` are those of the member the
    /// workloads' clients use).
    var cluster: RunningCluster? = nil
}

/// Starts servers with fresh data dirs on free loopback ports and stops them by PID.
struct ServerLauncher: Sendable {
    let workDir: String
    let etcdctlBinary: String
    /// How long to wait for a server to serve its first request.
    var readyTimeoutSeconds: Double = 120

    /// Creates an empty data directory under the work dir.
    func makeDataDir(for spec: TargetSpec) throws -> String {
        var template = Array("\(workDir)/\(spec.name)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw SubprocessError(description: "cannot create a data dir under \(workDir): \(String(cString: strerror(errno)))")
        }
        return String(cString: made) + "/data"
    }

    /// Starts `spec` on `dataDir` (created fresh when nil) and waits until a real request succeeds.
    /// `extraArguments` go after the launcher's own flags (e.g. `--quota-backend-bytes`).
    func start(_ spec: TargetSpec, dataDir existing: String? = nil, extraArguments: [String] = []) throws -> RunningServer {
        if spec.isCluster {
            return try ClusterLauncher(workDir: workDir, etcdctlBinary: etcdctlBinary).start(spec)
        }
        if case .external(let url) = spec.launch {
            let etcdctl = Etcdctl(binary: etcdctlBinary, endpoint: url)
            try etcdctl.check(["get", "/rusd-compare/ready"])
            return RunningServer(spec: spec, endpoint: url, pid: nil, dataDir: nil, logPath: nil, startupMs: nil)
        }
        let dataDir = try existing ?? makeDataDir(for: spec)
        let clientPort = try freeLoopbackPort()
        let endpoint = "http://127.0.0.1:\(clientPort)"
        let memberName = "rusd-compare-\(spec.name)"
        var executable: String
        var arguments = ["--name", memberName, "--data-dir", dataDir,
                         "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint]
        switch spec.launch {
        case .rusd(let binary, let engine):
            executable = binary
            arguments = ["--engine", engine] + arguments
            if spec.unsafeNoFsync { arguments.append("--unsafe-no-fsync") }
        case .etcd(let binary, let passUnsafeNoFsync):
            executable = binary
            let peer = "http://127.0.0.1:\(try freeLoopbackPort())"
            arguments += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                          "--initial-cluster", "\(memberName)=\(peer)",
                          "--logger", "zap", "--log-outputs", "stderr"]
            if spec.unsafeNoFsync && passUnsafeNoFsync { arguments.append("--unsafe-no-fsync") }
        case .external, .rusdCluster, .etcdCluster:
            fatalError("unreachable")
        }
        arguments += extraArguments
        let logPath = (dataDir as NSString).deletingLastPathComponent + "/server.log"
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard logFD >= 0 else { throw SubprocessError(description: "cannot open \(logPath)") }
        defer { close(logFD) }
        let spawnedAt = monotonicNanos()
        let pid = try Subprocess.spawn(executable, arguments, stdoutFD: logFD, stderrFD: logFD)
        ChildProcessRegistry.shared.add(pid)
        var server = RunningServer(spec: spec, endpoint: endpoint, pid: pid, dataDir: dataDir, logPath: logPath)

        let etcdctl = Etcdctl(binary: etcdctlBinary, endpoint: endpoint)
        let deadline = spawnedAt + UInt64(readyTimeoutSeconds * 1e9)
        while true {
            if let status = Subprocess.pollExit(pid) {
                ChildProcessRegistry.shared.remove(pid)
                throw SubprocessError(description: "\(spec.name) exited with status \(status) before serving; last log lines:\n\(tail(of: logPath))")
            }
            // Only ask once the port accepts connections: a refused first dial would put etcdctl's
            // gRPC into a 1 s reconnect backoff and quantize the measured start-up time.
            if loopbackPortAccepts(clientPort) {
                let attempt = try etcdctl.run(["get", "/rusd-compare/ready", "--command-timeout=5s"])
                if attempt.succeeded { break }
            }
            if monotonicNanos() > deadline {
                stop(server)
                throw SubprocessError(description: "\(spec.name) did not serve a request within \(Int(readyTimeoutSeconds)) s; last log lines:\n\(tail(of: logPath))")
            }
            usleep(2_000)
        }
        let readyNanos = monotonicNanos() - spawnedAt
        // Subtract what one etcdctl call costs against the now-running server.
        var probes: [UInt64] = []
        for _ in 0..<3 {
            if let out = try? etcdctl.run(["get", "/rusd-compare/ready"]), out.succeeded { probes.append(out.elapsedNanos) }
        }
        let probe = probes.sorted().first ?? 0
        server.startupMs = Double(readyNanos > probe ? readyNanos - probe : 0) / 1e6
        return server
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s). Keeps the data dir.
    func stop(_ server: RunningServer) {
        if let cluster = server.cluster { return cluster.stopAll() }
        guard let pid = server.pid else { return }
        kill(pid, SIGTERM)
        let deadline = monotonicNanos() + 10_000_000_000
        while Subprocess.pollExit(pid) == nil {
            if monotonicNanos() > deadline {
                kill(pid, SIGKILL)
                _ = Subprocess.waitForExit(pid)
                break
            }
            usleep(5_000)
        }
        ChildProcessRegistry.shared.remove(pid)
    }

    /// Removes the run's directory (data dir and log).
    func discard(_ server: RunningServer) {
        if let cluster = server.cluster {
            try? FileManager.default.removeItem(atPath: cluster.root)
            return
        }
        guard let dataDir = server.dataDir else { return }
        try? FileManager.default.removeItem(atPath: (dataDir as NSString).deletingLastPathComponent)
    }

    private func tail(of path: String) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n").suffix(8).joined(separator: "\n")
    }
}
