import Foundation

/// Runs `etcdctl` (API v3) against one endpoint, one process per call. This is the independent
/// client: it works against any server that speaks etcd's gRPC API, and its cost per call is
/// dominated by process start-up.
struct Etcdctl: Sendable {
    let binary: String
    let endpoint: String

    private var commonArguments: [String] {
        ["--endpoints=\(endpoint)", "--dial-timeout=2s", "--command-timeout=30s"]
    }
    private static let environment: [String: String] = {
        var env = ProcessInfo.processInfo.environment
        env["ETCDCTL_API"] = "3"
        return env
    }()

    /// Runs `etcdctl <arguments>`; returns the output whatever the exit status.
    func run(_ arguments: [String], stdin: String? = nil) throws -> ProcessOutput {
        try Subprocess.run(binary, commonArguments + arguments, stdin: stdin, environment: Self.environment)
    }

    /// Runs `etcdctl <arguments>` and throws (with etcdctl's own message) unless it exits 0.
    @discardableResult
    func check(_ arguments: [String], stdin: String? = nil) throws -> ProcessOutput {
        let out = try run(arguments, stdin: stdin)
        guard out.succeeded else {
            let message = (out.stderr.isEmpty ? out.stdout : out.stderr).trimmingCharacters(in: .whitespacesAndNewlines)
            throw SubprocessError(description: "etcdctl \(arguments.prefix(2).joined(separator: " ")) failed (exit \(out.exitStatus)): \(message)")
        }
        return out
    }

    /// The server's current revision and database size, from `endpoint status -w json`.
    func status() throws -> (revision: Int64, dbSize: Int64, version: String) {
        let out = try check(["endpoint", "status", "-w", "json"])
        guard let data = out.stdout.data(using: .utf8),
              let array = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]],
              let status = array.first?["Status"] as? [String: Any] else {
            throw SubprocessError(description: "cannot parse `etcdctl endpoint status -w json`: \(out.stdout.prefix(200))")
        }
        let header = status["header"] as? [String: Any]
        let revision = (header?["revision"] as? NSNumber)?.int64Value ?? 0
        let dbSize = (status["dbSize"] as? NSNumber)?.int64Value ?? 0
        return (revision, dbSize, status["version"] as? String ?? "?")
    }

    /// The current revision, from the header of a single-key Range.
    func currentRevision() throws -> Int64 {
        let out = try check(["-w", "json", "get", "/rusd-compare/revision-probe"])
        guard let data = out.stdout.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let header = object["header"] as? [String: Any],
              let revision = (header["revision"] as? NSNumber)?.int64Value else {
            throw SubprocessError(description: "cannot parse `etcdctl get -w json`: \(out.stdout.prefix(200))")
        }
        return revision
    }

    /// Compacts to the current revision (physically) and defragments.
    func compactAndDefragment() throws {
        let revision = try currentRevision()
        if revision > 1 {
            let out = try run(["compact", String(revision), "--physical"])
            // "required revision has been compacted" is fine: someone compacted already.
            if !out.succeeded && !out.stderr.contains("compacted") {
                throw SubprocessError(description: "etcdctl compact failed: \(out.stderr)")
            }
        }
        try check(["defrag"])
    }

    /// `etcdctl version` of the binary, e.g. "3.4.23" (no server needed).
    static func version(binary: String) -> String? {
        guard let out = try? Subprocess.run(binary, ["version"]), out.succeeded else { return nil }
        for line in out.stdout.split(separator: "\n") where line.hasPrefix("etcdctl version:") {
            return line.dropFirst("etcdctl version:".count).trimmingCharacters(in: .whitespaces)
        }
        return nil
    }
}
