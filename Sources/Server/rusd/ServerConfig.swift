// Typed, validated configuration built from the parsed flags.
import Auth
import EtcdServer

/// A listen or advertise URL: scheme, host, port.
struct EndpointURL: Sendable, Hashable, CustomStringConvertible {
    enum Scheme: String, Sendable { case http, https, unix, unixs }
    let scheme: Scheme
    let host: String
    let port: Int

    var description: String { "\(scheme.rawValue)://\(host.contains(":" as Character) ? "[\(host)]" : host):\(port)" }
    var isTLS: Bool { scheme == .https || scheme == .unixs }

    /// Parses "http://127.0.0.1:2379"; etcd's wording on errors.
    init(parsing text: String, flag: String) throws {
        let parts = text.split(separator: "://", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let scheme = Scheme(rawValue: String(parts[0]).lowercased()) else {
            throw FlagError(description: "invalid value \"\(text)\" for flag -\(flag): URL scheme must be http, https, unix, or unixs: \(text)")
        }
        var rest = Substring(parts[1])
        if let slash = rest.firstIndex(of: "/") {
            guard rest[slash...] == "/" else {
                throw FlagError(description: "invalid value \"\(text)\" for flag -\(flag): URL must not contain a path: \(text)")
            }
            rest = rest[..<slash]
        }
        let host: Substring
        let portText: Substring
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            guard after.hasPrefix(":") else {
                throw FlagError(description: "invalid value \"\(text)\" for flag -\(flag): URL address does not have the form \"host:port\": \(text)")
            }
            portText = after.dropFirst()
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            portText = rest[rest.index(after: colon)...]
        } else {
            throw FlagError(description: "invalid value \"\(text)\" for flag -\(flag): URL address does not have the form \"host:port\": \(text)")
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw FlagError(description: "invalid value \"\(text)\" for flag -\(flag): invalid port in \(text)")
        }
        self.scheme = scheme
        self.host = String(host)
        self.port = port
    }

    static func list(_ text: String, flag: String) throws -> [EndpointURL] {
        try text.split(separator: ",").map { try EndpointURL(parsing: String($0).trimmingSpaces(), flag: flag) }
    }
}

/// Everything the server needs to start.
struct ServerConfig: Sendable {
    var name: String
    var dataDirectory: String
    var engine: String
    var listenClientURLs: [EndpointURL]
    var advertiseClientURLs: [EndpointURL]
    var advertisePeerURLs: [EndpointURL]
    var listenMetricsURLs: [EndpointURL]
    var initialClusterToken: String
    /// --shared-log: the PostgreSQL URL of the cluster's log ("": single member, embedded log).
    var sharedLog: String
    /// --snapshot-count, --experimental-snapshot-catchup-entries (cluster mode: SnapshotPolicy).
    var snapshotCount: UInt64
    var snapshotCatchUpEntries: UInt64
    var maxRequestBytes: Int
    var maxTxnOps: Int
    var quotaBackendBytes: Int64
    var maxConcurrentStreams: UInt32
    var keepaliveMinTime: Duration
    var keepaliveInterval: Duration
    var keepaliveTimeout: Duration
    var progressNotifyInterval: Duration
    var autoCompactionRetention: String
    var autoCompactionMode: String
    /// Parsed --auto-compaction-mode/--auto-compaction-retention (nil: retention 0, disabled).
    var autoCompaction: AutoCompactionPolicy?
    var unsafeNoFsync: Bool
    /// --cluster-local-fsync (cluster mode only; see LogCheckpointedEngine).
    var clusterLocalFsync: Bool
    var certFile: String
    var keyFile: String
    var trustedCAFile: String
    var clientCertAuth: Bool
    var autoTLS: Bool
    var authTokenTTL: Int
    /// --auth-token (key files already read and checked).
    var authTokens: any AuthTokenProvider
    var bcryptCost: Int
    var logLevel: String
    var logOutputs: String
    /// --metrics: "basic" or "extensive" (adds grpc_server_handling_seconds, as etcd).
    var metrics: String

    /// etcd's default quota when --quota-backend-bytes is 0.
    static let defaultQuotaBytes: Int64 = 2 * 1024 * 1024 * 1024

    init(_ flags: ParsedFlags) throws {
        name = flags.string("name")
        var dir = flags.string("data-dir")
        if dir == "${name}.etcd" { dir = "\(name).etcd" }
        dataDirectory = dir
        engine = flags.string("engine")
        listenClientURLs = try EndpointURL.list(flags.string("listen-client-urls"), flag: "listen-client-urls")
        advertiseClientURLs = try EndpointURL.list(flags.string("advertise-client-urls"), flag: "advertise-client-urls")
        advertisePeerURLs = try EndpointURL.list(flags.string("initial-advertise-peer-urls"), flag: "initial-advertise-peer-urls")
        listenMetricsURLs = try EndpointURL.list(flags.string("listen-metrics-urls"), flag: "listen-metrics-urls")
        initialClusterToken = flags.string("initial-cluster-token")
        sharedLog = flags.string("shared-log")
        snapshotCount = UInt64(try Self.integer(flags, "snapshot-count", min: 1))
        snapshotCatchUpEntries = UInt64(try Self.integer(flags, "experimental-snapshot-catchup-entries", min: 0))
        maxRequestBytes = try Self.integer(flags, "max-request-bytes", min: 1)
        maxTxnOps = try Self.integer(flags, "max-txn-ops", min: 1)
        let quota = try Self.integer(flags, "quota-backend-bytes", min: Int.min)
        quotaBackendBytes = quota <= 0 ? Self.defaultQuotaBytes : Int64(quota)
        maxConcurrentStreams = UInt32(clamping: try Self.integer(flags, "max-concurrent-streams", min: 1))
        keepaliveMinTime = try Self.duration(flags, "grpc-keepalive-min-time")
        keepaliveInterval = try Self.duration(flags, "grpc-keepalive-interval")
        keepaliveTimeout = try Self.duration(flags, "grpc-keepalive-timeout")
        progressNotifyInterval = try Self.duration(flags, "experimental-watch-progress-notify-interval")
        autoCompactionRetention = flags.string("auto-compaction-retention")
        autoCompactionMode = flags.string("auto-compaction-mode")
        unsafeNoFsync = flags.bool("unsafe-no-fsync")
        clusterLocalFsync = flags.bool("cluster-local-fsync")
        certFile = flags.string("cert-file")
        keyFile = flags.string("key-file")
        trustedCAFile = flags.string("trusted-ca-file")
        clientCertAuth = flags.bool("client-cert-auth")
        autoTLS = flags.bool("auto-tls")
        authTokenTTL = try Self.integer(flags, "auth-token-ttl", min: 1)
        do {
            authTokens = try AuthTokenSpec(parsing: flags.string("auth-token"))
                .makeProvider(simpleTTLSeconds: authTokenTTL, parseDuration: parseGoDuration)
        } catch {
            throw FlagError(description: "--auth-token: \(error)")
        }
        bcryptCost = try Self.integer(flags, "bcrypt-cost", min: 4)
        logLevel = flags.string("log-level")
        logOutputs = flags.string("log-outputs")
        metrics = flags.string("metrics")

        guard ["debug", "info", "warn", "error", "panic", "fatal"].contains(logLevel) else {
            throw FlagError(description: "unknown log level \"\(logLevel)\" (valid: debug, info, warn, error, panic, fatal)")
        }
        guard ["basic", "extensive"].contains(metrics) else {
            throw FlagError(description: "unknown --metrics \"\(metrics)\" (valid: basic, extensive)")
        }
        do {
            autoCompaction = try AutoCompactionPolicy.parse(mode: autoCompactionMode, retention: autoCompactionRetention,
                                                            parseDuration: parseGoDuration)
        } catch {
            throw FlagError(description: error.description)
        }
        let cluster = flags.string("initial-cluster")
        if !cluster.isEmpty {
            let members = cluster.split(separator: ",").map { $0.split(separator: "=", maxSplits: 1).first.map(String.init) ?? "" }
            guard Set(members) == [name] else {
                throw FlagError(description: "--initial-cluster must name only this member (\(name)): rusd is a single-member server; got \(cluster)")
            }
        }
        if listenClientURLs.contains(where: \.isTLS) && certFile.isEmpty && keyFile.isEmpty && !autoTLS {
            throw FlagError(description: "TLS key/cert (--cert-file, --key-file) must be provided for client url \(listenClientURLs.first(where: \.isTLS)!) with HTTPS scheme")
        }
    }

    private static func integer(_ flags: ParsedFlags, _ name: String, min: Int) throws -> Int {
        let text = flags.string(name)
        guard let value = Int(text), value >= min else {
            throw FlagError(description: "invalid value \"\(text)\" for flag -\(name): parse error")
        }
        return value
    }

    private static func duration(_ flags: ParsedFlags, _ name: String) throws -> Duration {
        let text = flags.string(name)
        guard let d = parseGoDuration(text) else {
            throw FlagError(description: "invalid value \"\(text)\" for flag -\(name): parse error")
        }
        return d
    }
}

/// Parses Go's time.Duration syntax ("300ms", "5s", "2h0m0s", "1.5h"); nil when invalid.
func parseGoDuration(_ text: String) -> Duration? {
    if text == "0" { return .zero }
    var rest = Substring(text)
    var total = 0.0
    guard !rest.isEmpty else { return nil }
    let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
    while !rest.isEmpty {
        let numberEnd = rest.firstIndex { !($0.isNumber || $0 == ".") } ?? rest.endIndex
        guard numberEnd != rest.startIndex, let number = Double(rest[..<numberEnd]) else { return nil }
        rest = rest[numberEnd...]
        guard let unit = units.sorted(by: { $0.0.count > $1.0.count }).first(where: { rest.hasPrefix($0.0) }) else { return nil }
        rest = rest.dropFirst(unit.0.count)
        total += number * unit.1
    }
    // Go refuses durations beyond Int64 nanoseconds ("invalid duration"); Int64(_:) would trap.
    let nanoseconds = total * 1e9
    guard nanoseconds.isFinite, nanoseconds < 9.2e18 else { return nil }
    return .nanoseconds(Int64(nanoseconds))
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}
