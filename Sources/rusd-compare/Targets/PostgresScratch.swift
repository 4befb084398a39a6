#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The PostgreSQL a `rusd-cluster` target's members share: a scratch server this tool starts
/// (initdb in a temp dir, `postgres` on a free loopback port, synchronous_commit on, fsync on;
/// as the postgres user when we are root, since PostgreSQL refuses to run as root), or an
/// existing database given by URL, whose rusd_* tables are dropped so each run starts on an
/// empty log. Stopped by PID (fast shutdown).
final class PostgresScratch: Sendable {
    /// What members pass as --shared-log.
    let url: String
    let pid: pid_t?
    private let root: String?

    static let user = "postgres"
    static let rusdTables = ["rusd_log", "rusd_head", "rusd_meta", "rusd_members", "rusd_added", "rusd_removed",
                             "rusd_lease_renewals", "rusd_leader"]

    private init(url: String, pid: pid_t?, root: String?) {
        self.url = url
        self.pid = pid
        self.root = root
    }

    /// The directory holding initdb and postgres (Debian: /usr/lib/postgresql/<v>/bin).
    static func binaries() -> String? {
        let base = "/usr/lib/postgresql"
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        for v in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            let dir = "\(base)/\(v)/bin"
            if access("\(dir)/initdb", X_OK) == 0 && access("\(dir)/postgres", X_OK) == 0 { return dir }
        }
        if let initdb = Subprocess.resolveExecutable("initdb") {
            return URL(fileURLWithPath: initdb).resolvingSymlinksInPath().deletingLastPathComponent().path
        }
        return nil
    }

    /// An existing database: drops the rusd tables (psql) so the members start a new log.
    static func existing(url: String) throws -> PostgresScratch {
        guard let psql = Subprocess.resolveExecutable("psql") else {
            throw SubprocessError(description: "--postgres needs psql (to drop the rusd_* tables before each run)")
        }
        let drop = "DROP TABLE IF EXISTS \(rusdTables.joined(separator: ", ")) CASCADE"
        let out = try Subprocess.run(psql, [url, "-v", "ON_ERROR_STOP=1", "-qAtc", drop])
        guard out.succeeded else { throw SubprocessError(description: "psql \(url): \(out.stderr)") }
        return PostgresScratch(url: url, pid: nil, root: nil)
    }

    /// initdb in a new folder under `workDir` and starts postgres on a free loopback port;
    /// returns once `SELECT 1` succeeds.
    static func start(workDir: String) throws -> PostgresScratch {
        guard let bin = binaries() else {
            throw SubprocessError(description: "PostgreSQL not found (initdb, postgres: Debian postgresql-15); or give --postgres URL")
        }
        guard let psql = Subprocess.resolveExecutable("psql") else {
            throw SubprocessError(description: "psql not found (Debian postgresql-client)")
        }
        var template = Array("\(workDir)/postgres-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw SubprocessError(description: "cannot create a folder under \(workDir): \(String(cString: strerror(errno)))")
        }
        let root = String(cString: made)
        chmod(root, 0o755)
        let asRoot = geteuid() == 0
        if asRoot {
            guard let pw = getpwnam(user) else { throw SubprocessError(description: "no \(user) user to run PostgreSQL as") }
            chown(root, pw.pointee.pw_uid, pw.pointee.pw_gid)
        }
        // As root, setpriv switches user and then execs: the PID we get is the postmaster's.
        func command(_ executable: String, _ arguments: [String]) -> (String, [String]) {
            asRoot ? ("/usr/bin/setpriv", ["--reuid=\(user)", "--regid=\(user)", "--init-groups", "--", executable] + arguments)
                   : (executable, arguments)
        }
        let data = "\(root)/data"
        let (initdb, initArgs) = command("\(bin)/initdb", ["-D", data, "-U", user, "--auth=trust", "-E", "UTF8", "--no-locale"])
        let made1 = try Subprocess.run(initdb, initArgs)
        guard made1.succeeded else {
            try? FileManager.default.removeItem(atPath: root)
            throw SubprocessError(description: "initdb failed: \(made1.stderr.suffix(400))")
        }
        let port = try freeLoopbackPort()
        let logPath = "\(root)/postgres.log"
        let logFD = open(logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard logFD >= 0 else { throw SubprocessError(description: "cannot open \(logPath)") }
        defer { close(logFD) }
        if asRoot, let pw = getpwnam(user) { fchown(logFD, pw.pointee.pw_uid, pw.pointee.pw_gid) }
        let (postgres, args) = command("\(bin)/postgres", ["-D", data, "-p", String(port), "-k", root,
                                                           "-c", "listen_addresses=127.0.0.1", "-c", "synchronous_commit=on",
                                                           "-c", "fsync=on", "-c", "max_connections=200"])
        let pid = try Subprocess.spawn(postgres, args, stdoutFD: logFD, stderrFD: logFD)
        ChildProcessRegistry.shared.add(pid)
        let scratch = PostgresScratch(url: "postgres://\(user)@127.0.0.1:\(port)/postgres", pid: pid, root: root)
        let deadline = monotonicNanos() + 60_000_000_000
        while true {
            if let status = Subprocess.pollExit(pid) {
                ChildProcessRegistry.shared.remove(pid)
                let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
                throw SubprocessError(description: "postgres exited with \(status): \(log.suffix(600))")
            }
            if loopbackPortAccepts(port),
               let out = try? Subprocess.run(psql, [scratch.url, "-qAtc", "SELECT 1"]), out.succeeded { return scratch }
            if monotonicNanos() > deadline {
                scratch.stop()
                throw SubprocessError(description: "postgres did not answer within 60 s")
            }
            usleep(50_000)
        }
    }

    /// Fast shutdown (SIGINT), SIGKILL after 20 s; removes the scratch folder.
    func stop() {
        if let pid {
            kill(pid, SIGINT)
            let deadline = monotonicNanos() + 20_000_000_000
            while Subprocess.pollExit(pid) == nil {
                if monotonicNanos() > deadline {
                    kill(pid, SIGKILL)
                    _ = Subprocess.waitForExit(pid)
                    break
                }
                usleep(10_000)
            }
            ChildProcessRegistry.shared.remove(pid)
        }
        if let root { try? FileManager.default.removeItem(atPath: root) }
    }
}
