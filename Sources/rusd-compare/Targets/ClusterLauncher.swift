#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// One member of a cluster this tool started: how to (re)start it.
struct ClusterMember: Sendable {
    var name: String
    /// Client URL, e.g. http://127.0.0.1:23456.
    var endpoint: String
    var executable: String
    var arguments: [String]
    var logPath: String
    var clientPort: Int
}

/// A three-member cluster started for one workload run: its members' current PIDs (a member
/// killed by the failover workload gets a new PID when restarted), its PostgreSQL (rusd), and
/// the folder holding every data dir and log.
final class RunningCluster: Sendable {
    let members: [ClusterMember]
    let root: String
    let postgres: PostgresScratch?
    let etcdctlBinary: String
    private let pids: Mutex<[pid_t?]>

    init(members: [ClusterMember], root: String, postgres: PostgresScratch?, etcdctlBinary: String) {
        self.members = members
        self.root = root
        self.postgres = postgres
        self.etcdctlBinary = etcdctlBinary
        pids = Mutex(Array(repeating: nil, count: members.count))
    }

    var endpoints: [String] { members.map(\.endpoint) }
    func pid(_ member: Int) -> pid_t? { pids.withLock { $0[member] } }

    /// Starts member `i` (its data dir kept) without waiting for it to serve.
    func spawn(_ i: Int) throws {
        let m = members[i]
        let logFD = open(m.logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard logFD >= 0 else { throw SubprocessError(description: "cannot open \(m.logPath)") }
        defer { close(logFD) }
        let pid = try Subprocess.spawn(m.executable, m.arguments, stdoutFD: logFD, stderrFD: logFD)
        ChildProcessRegistry.shared.add(pid)
        pids.withLock { $0[i] = pid }
    }

    /// Waits until member `i` answers a linearizable get (etcdctl).
    func waitReady(_ i: Int, timeoutSeconds: Double = 120) throws {
        let m = members[i]
        let etcdctl = Etcdctl(binary: etcdctlBinary, endpoint: m.endpoint)
        let deadline = monotonicNanos() + UInt64(timeoutSeconds * 1e9)
        while true {
            if let pid = pid(i), let status = Subprocess.pollExit(pid) {
                ChildProcessRegistry.shared.remove(pid)
                pids.withLock { $0[i] = nil }
                throw SubprocessError(description: "\(m.name) exited with status \(status) before serving; last log lines:\n\(tail(m.logPath))")
            }
            if loopbackPortAccepts(m.clientPort),
               let out = try? etcdctl.run(["get", "/rusd-compare/ready", "--command-timeout=5s"]), out.succeeded { return }
            if monotonicNanos() > deadline {
                throw SubprocessError(description: "\(m.name) did not serve within \(Int(timeoutSeconds)) s; last log lines:\n\(tail(m.logPath))")
            }
            usleep(20_000)
        }
    }

    /// kill -9 of member `i`, reaped.
    func kill9(_ i: Int) {
        guard let pid = pid(i) else { return }
        kill(pid, SIGKILL)
        _ = Subprocess.waitForExit(pid)
        ChildProcessRegistry.shared.remove(pid)
        pids.withLock { $0[i] = nil }
    }

    /// SIGTERM to every member (SIGKILL after 10 s), then PostgreSQL.
    func stopAll() {
        let running = pids.withLock { list in list.compactMap { $0 } }
        for pid in running { kill(pid, SIGTERM) }
        let deadline = monotonicNanos() + 10_000_000_000
        for pid in running {
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
        pids.withLock { $0 = Array(repeating: nil, count: members.count) }
        postgres?.stop()
    }

    /// Member ID and leader ID each member reports (`etcdctl endpoint status`), by member index.
    func statuses() -> [(memberID: UInt64, leader: UInt64)?] {
        members.map { m in
            let etcdctl = Etcdctl(binary: etcdctlBinary, endpoint: m.endpoint)
            guard let out = try? etcdctl.run(["endpoint", "status", "-w", "json"]), out.succeeded,
                  let data = out.stdout.data(using: .utf8),
                  let array = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]],
                  let status = array.first?["Status"] as? [String: Any],
                  let header = status["header"] as? [String: Any],
                  let member = (header["member_id"] as? NSNumber)?.uint64Value,
                  let leader = (status["leader"] as? NSNumber)?.uint64Value else { return nil }
            return (member, leader)
        }
    }

    /// The index of the member every live member names as leader, if they agree.
    func leaderIndex() -> Int? {
        let s = statuses()
        let leaders = Set(s.compactMap { $0?.leader })
        guard leaders.count == 1, let leader = leaders.first else { return nil }
        return s.firstIndex { $0?.memberID == leader }
    }

    private func tail(_ path: String) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n").suffix(8).joined(separator: "\n")
    }
}

/// Starts the cluster targets: three rusd members on one PostgreSQL, or three etcd members.
/// Clients of the ordinary workloads talk to one member (`RunningServer.endpoint`): the leader
/// for etcd (as the baselines measured it), m1 for rusd (every rusd member takes writes alike).
struct ClusterLauncher: Sendable {
    let workDir: String
    let etcdctlBinary: String

    func start(_ spec: TargetSpec) throws -> RunningServer {
        var template = Array("\(workDir)/\(spec.name)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw SubprocessError(description: "cannot create a folder under \(workDir): \(String(cString: strerror(errno)))")
        }
        let root = String(cString: made)
        chmod(root, 0o755)   // PostgreSQL runs as its own user under it
        let spawnedAt = monotonicNanos()
        let cluster: RunningCluster
        var clientMember = 0
        switch spec.launch {
        case .rusdCluster(let binary, let engines, let postgresURL, let localFsync):
            let postgres = try postgresURL.map(PostgresScratch.existing(url:)) ?? PostgresScratch.start(workDir: root)
            var members: [ClusterMember] = []
            for (i, engine) in engines.enumerated() {
                let port = try freeLoopbackPort()
                let endpoint = "http://127.0.0.1:\(port)"
                var arguments = ["--name", "m\(i + 1)", "--engine", engine, "--data-dir", "\(root)/m\(i + 1)",
                                 "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
                                 "--shared-log", postgres.url]
                if let localFsync { arguments.append("--cluster-local-fsync=\(localFsync)") }
                members.append(ClusterMember(name: "m\(i + 1)", endpoint: endpoint, executable: binary, arguments: arguments,
                                             logPath: "\(root)/m\(i + 1).log", clientPort: port))
            }
            cluster = RunningCluster(members: members, root: root, postgres: postgres, etcdctlBinary: etcdctlBinary)
            do {
                // One after the other: the first creates the schema.
                for i in members.indices {
                    try cluster.spawn(i)
                    try cluster.waitReady(i)
                }
            } catch {
                cluster.stopAll()
                throw error
            }
        case .etcdCluster(let binary):
            var ports: [(client: Int, peer: Int)] = []
            for _ in 0..<3 { ports.append((try freeLoopbackPort(), try freeLoopbackPort())) }
            let initial = ports.enumerated().map { "e\($0.offset + 1)=http://127.0.0.1:\($0.element.peer)" }.joined(separator: ",")
            let members = ports.enumerated().map { pair -> ClusterMember in
                let (i, p) = (pair.offset, pair.element)
                let endpoint = "http://127.0.0.1:\(p.client)", peer = "http://127.0.0.1:\(p.peer)"
                return ClusterMember(name: "e\(i + 1)", endpoint: endpoint, executable: binary, arguments: [
                    "--name", "e\(i + 1)", "--data-dir", "\(root)/e\(i + 1)",
                    "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
                    "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", "rusd-compare-\(getpid())",
                    "--logger", "zap", "--log-outputs", "stderr"],
                    logPath: "\(root)/e\(i + 1).log", clientPort: p.client)
            }
            cluster = RunningCluster(members: members, root: root, postgres: nil, etcdctlBinary: etcdctlBinary)
            do {
                // Together: a member serves only once a quorum has elected a leader.
                for i in members.indices { try cluster.spawn(i) }
                for i in members.indices { try cluster.waitReady(i) }
            } catch {
                cluster.stopAll()
                throw error
            }
            clientMember = cluster.leaderIndex() ?? 0
        default:
            throw SubprocessError(description: "\(spec.name) is not a cluster target")
        }
        let readyMs = Double(monotonicNanos() - spawnedAt) / 1e6
        let m = cluster.members[clientMember]
        return RunningServer(spec: spec, endpoint: m.endpoint, pid: cluster.pid(clientMember), dataDir: nil,
                             logPath: m.logPath, startupMs: readyMs, cluster: cluster)
    }
}
