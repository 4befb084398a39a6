#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// An `EtcdClient` that runs one `etcdctl ... -w json` process per request (and one long-lived
/// `etcdctl watch` per watch). It exists to exercise every workload against any server before
/// the persistent gRPC client is available (`--client etcdctl`); its latencies are etcdctl's
/// start-up, not the server's, and the report says so.
///
/// Binary keys and values cannot travel through argv, so bytes that are not printable UTF-8 are
/// sent as "hex:" + hex and decoded again when read back (reversible for this tool's data).
struct EtcdctlClient: EtcdClient {
    let etcdctl: Etcdctl

    // MARK: encoding

    static func encode(_ bytes: [UInt8]) -> String {
        let printable = bytes.allSatisfy { $0 >= 0x20 && $0 != 0x7f } && !bytes.starts(with: Array("hex:".utf8))
        if printable, let s = String(validating: bytes, as: UTF8.self) { return s }
        return "hex:" + bytes.map { String(format: "%02x", $0) }.joined()
    }

    static func decode(base64: String?) -> [UInt8] {
        guard let base64, let data = Data(base64Encoded: base64) else { return [] }
        let bytes = [UInt8](data)
        guard bytes.starts(with: Array("hex:".utf8)) else { return bytes }
        let hex = Array(bytes.dropFirst(4))
        var out: [UInt8] = []
        out.reserveCapacity(hex.count / 2)
        var i = 0
        while i + 1 < hex.count {
            out.append(UInt8(String(decoding: hex[i...i + 1], as: UTF8.self), radix: 16) ?? 0)
            i += 2
        }
        return out
    }

    /// A Go-quoted string for `etcdctl txn` input (parsed with %q).
    static func quote(_ bytes: [UInt8]) -> String {
        var s = "\""
        for ch in encode(bytes).unicodeScalars {
            switch ch {
            case "\"": s += "\\\""
            case "\\": s += "\\\\"
            default: s.unicodeScalars.append(ch)
            }
        }
        return s + "\""
    }

    static func keyValue(_ json: [String: Any]) -> KeyValue {
        func int(_ name: String) -> Int64 { (json[name] as? NSNumber)?.int64Value ?? 0 }
        return KeyValue(key: decode(base64: json["key"] as? String), value: decode(base64: json["value"] as? String),
                        createRevision: int("create_revision"), modRevision: int("mod_revision"),
                        version: int("version"), lease: int("lease"))
    }

    static func revision(_ json: [String: Any]) -> Int64 {
        let header = (json["header"] ?? json["Header"]) as? [String: Any]
        return (header?["revision"] as? NSNumber)?.int64Value ?? (json["revision"] as? NSNumber)?.int64Value ?? 0
    }

    // MARK: running

    /// Runs etcdctl off the cooperative thread pool and parses its JSON output.
    private func json(_ arguments: [String], stdin: String? = nil) async throws -> [String: Any] {
        let etcdctl = self.etcdctl
        let output = try await offPool { try etcdctl.check(["-w", "json"] + arguments, stdin: stdin) }
        guard let data = output.stdout.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw SubprocessError(description: "etcdctl \(arguments.first ?? ""): unparsable output \(output.stdout.prefix(200))")
        }
        return object
    }

    private func rangeArguments(_ key: [UInt8], _ rangeEnd: [UInt8]) -> [String] {
        if rangeEnd.isEmpty { return [Self.encode(key)] }
        if rangeEnd == [0] { return ["--from-key", Self.encode(key)] }
        return [Self.encode(key), Self.encode(rangeEnd)]
    }

    // MARK: EtcdClient

    func put(key: [UInt8], value: [UInt8], lease: Int64) async throws -> Int64 {
        var args = ["put"]
        if lease != 0 { args.append("--lease=\(String(lease, radix: 16))") }
        return Self.revision(try await json(args + ["--", Self.encode(key), Self.encode(value)]))
    }

    func range(key: [UInt8], rangeEnd: [UInt8], limit: Int64, revision: Int64,
               keysOnly: Bool, countOnly: Bool) async throws -> RangeResult {
        var args = ["get"]
        if limit > 0 { args.append("--limit=\(limit)") }
        if revision > 0 { args.append("--rev=\(revision)") }
        // etcdctl 3.4 has no --count-only; "count" is in every JSON answer anyway.
        if keysOnly || countOnly { args.append("--keys-only") }
        if countOnly && limit == 0 { args.append("--limit=1") }
        let r = try await json(args + ["--"] + rangeArguments(key, rangeEnd))
        let kvs = (r["kvs"] as? [[String: Any]] ?? []).map(Self.keyValue)
        return RangeResult(kvs: kvs, count: (r["count"] as? NSNumber)?.int64Value ?? Int64(kvs.count),
                           more: r["more"] as? Bool ?? false, revision: Self.revision(r))
    }

    func txn(compares: [TxnCompare], success: [TxnOp], failure: [TxnOp]) async throws -> TxnResult {
        func line(_ op: TxnOp) -> String {
            switch op {
            case .put(let k, let v, let lease):
                return "put \(lease != 0 ? "--lease=\(String(lease, radix: 16)) " : "")\(Self.quote(k)) \(Self.quote(v))"
            case .range(let k, let end, let limit):
                return "get \(limit > 0 ? "--limit=\(limit) " : "")\(Self.quote(k))\(end.isEmpty ? "" : " " + Self.quote(end))"
            case .delete(let k, let end):
                return "del \(Self.quote(k))\(end.isEmpty ? "" : " " + Self.quote(end))"
            }
        }
        var input = ""
        for compare in compares {
            switch compare {
            case .modRevision(let k, let r): input += "mod(\(Self.quote(k))) = \"\(r)\"\n"
            case .version(let k, let v): input += "version(\(Self.quote(k))) = \"\(v)\"\n"
            }
        }
        input += "\n" + success.map(line).joined(separator: "\n") + (success.isEmpty ? "" : "\n")
        input += "\n" + failure.map(line).joined(separator: "\n") + (failure.isEmpty ? "" : "\n") + "\n"
        let r = try await json(["txn"], stdin: input)
        var kvs: [KeyValue] = []
        for response in r["responses"] as? [[String: Any]] ?? [] {
            if let range = (response["Response"] as? [String: Any])?["ResponseRange"] as? [String: Any] {
                kvs = (range["kvs"] as? [[String: Any]] ?? []).map(Self.keyValue)
                break
            }
        }
        return TxnResult(succeeded: r["succeeded"] as? Bool ?? false, revision: Self.revision(r), rangeKVs: kvs)
    }

    func delete(key: [UInt8], rangeEnd: [UInt8]) async throws -> Int64 {
        let r = try await json(["del", "--"] + rangeArguments(key, rangeEnd))
        return (r["deleted"] as? NSNumber)?.int64Value ?? 0
    }

    func watch(key: [UInt8], rangeEnd: [UInt8], startRevision: Int64, prevKV: Bool) async throws -> WatchHandle {
        var args = ["watch"]
        if startRevision > 0 { args.append("--rev=\(startRevision)") }
        if prevKV { args.append("--prev-kv") }
        args += ["-w", "json"] + rangeArguments(key, rangeEnd)  // no "--": for watch it starts an exec-command
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SubprocessError(description: "pipe failed") }
        var env = ProcessInfo.processInfo.environment
        env["ETCDCTL_API"] = "3"
        let pid = try Subprocess.spawn(etcdctl.binary, ["--endpoints=\(etcdctl.endpoint)"] + args,
                                       stdoutFD: fds[1], stderrFD: nil, environment: env)
        Glibc.close(fds[1])
        ChildProcessRegistry.shared.add(pid)
        let readFD = fds[0]
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: [WatchEvent].self)
        let reader = Thread {
            var buffer: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65536)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(readFD, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                buffer.append(contentsOf: chunk[0..<n])
                while let newline = buffer.firstIndex(of: 0x0a) {
                    let line = Data(buffer[..<newline])
                    buffer.removeSubrange(...newline)
                    guard let object = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else { continue }
                    let events = (object["Events"] as? [[String: Any]] ?? []).map { e -> WatchEvent in
                        let kind: WatchEvent.Kind = (e["type"] as? NSNumber)?.intValue == 1 ? .delete : .put
                        return WatchEvent(kind: kind, kv: Self.keyValue(e["kv"] as? [String: Any] ?? [:]),
                                          prevKV: (e["prev_kv"] as? [String: Any]).map(Self.keyValue))
                    }
                    if !events.isEmpty { continuation.yield(events) }
                }
            }
            Glibc.close(readFD)
            continuation.finish()
        }
        reader.start()
        return WatchHandle(events: stream, cancel: {
            kill(pid, SIGTERM)
            _ = Subprocess.waitForExit(pid)
            ChildProcessRegistry.shared.remove(pid)
        })
    }

    func leaseGrant(ttl: Int64) async throws -> Int64 {
        let r = try await json(["lease", "grant", String(ttl)])
        guard let id = (r["ID"] as? NSNumber)?.int64Value else { throw SubprocessError(description: "lease grant: no ID") }
        return id
    }

    func compact(revision: Int64, physical: Bool) async throws {
        let etcdctl = self.etcdctl
        _ = try await offPool { try etcdctl.check(["compact", String(revision)] + (physical ? ["--physical"] : [])) }
    }

    func status() async throws -> ServerStatus {
        let etcdctl = self.etcdctl
        let s = try await offPool { try etcdctl.status() }
        return ServerStatus(version: s.version, dbSize: s.dbSize, revision: s.revision)
    }

    func defragment() async throws {
        let etcdctl = self.etcdctl
        _ = try await offPool { try etcdctl.check(["defrag"]) }
    }

    func close() async {}

    func runClosedLoop(_ load: ClosedLoopLoad) async throws -> LatencyHistogram {
        try await runClosedLoopWithTasks(load)
    }
}

/// Makes `EtcdctlClient`s (`--client etcdctl`).
struct EtcdctlClientFactory: EtcdClientFactory {
    let binary: String
    var name: String { "etcdctl (one process per request; latencies are etcdctl start-up)" }
    func connect(endpoint: String) async throws -> any EtcdClient {
        EtcdctlClient(etcdctl: Etcdctl(binary: binary, endpoint: endpoint))
    }
}

/// Runs blocking work (a child process) on a Dispatch thread, not on Swift's cooperative pool.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }
    }
}
