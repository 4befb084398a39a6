import PostgresNIO
import Synchronization

/// `--shared-log`: the PostgreSQL database that holds the cluster's log, on one server or on
/// several (a primary and its standbys, of which rusd uses only the writable one:
/// `WritableConnection.swift`). Two spellings, which may be mixed:
///
/// - libpq's multi-host URI: `postgres://user[:password]@host1[:port1],host2[:port2]/database`
///   (`?target_session_attrs=read-write` or `=primary` is accepted: it is what rusd does anyway);
/// - etcd's comma-separated list: `postgres://user@host1:5432/db,postgres://user@host2:5432/db`;
///   every URL must then name the same user, password and database (one replicated database).
///
/// User, password and database may be percent-encoded (`%40` for `@`), as libpq reads them.
/// `description` never shows the password.
public struct SharedLogURL: Sendable, CustomStringConvertible {
    /// One PostgreSQL server of the replicated database.
    public struct Server: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public var user: String
    public var password: String?
    /// In the order given; never empty, no server twice.
    public var servers: [Server]
    public var database: String
    /// The index in `servers` of the server found writable last: connections try it first.
    /// Shared by every copy of this value (one parsed flag, one process).
    let lastWritable = LastWritableServer()

    /// Parses the flag's value; a clear `SharedLogError.badURL` for anything else.
    public init(_ text: String) throws(SharedLogError) {
        // Split the etcd-style list: a comma starts a new URL only when a scheme follows it
        // (inside one URL, commas separate libpq's hosts).
        var urls: [String] = []
        for piece in text.split(separator: ",", omittingEmptySubsequences: false) {
            if Self.scheme(of: piece) == nil && piece.contains("://") {
                throw .badURL(text, "it must start with postgres:// (several URLs are separated by commas)")
            }
            if urls.isEmpty || Self.scheme(of: piece) != nil {
                urls.append(String(piece))
            } else {
                urls[urls.count - 1] += "," + piece
            }
        }
        var parsed: [Single] = []
        for u in urls { parsed.append(try Single(u, whole: text)) }
        guard let first = parsed.first else { throw .badURL(text, "it is empty") }
        for other in parsed.dropFirst() where other.user != first.user || other.password != first.password
            || other.database != first.database {
            throw .badURL(text, "every URL must name the same user, password and database: they are servers of one replicated database")
        }
        var servers: [Server] = []
        for s in parsed.flatMap(\.servers) {
            if servers.contains(s) { throw .badURL(text, "the server \(s) is named twice") }
            servers.append(s)
        }
        user = first.user
        password = first.password
        database = first.database
        self.servers = servers
    }

    public var description: String {
        "postgres://\(user)@\(servers.map(\.description).joined(separator: ","))/\(database)"
    }

    /// How long connecting to the writable server may take: 3 s per server tried, and 2 s for
    /// the writability check.
    var connectLimit: Duration { .seconds(2 + 3 * servers.count) }

    func configuration(_ server: Server) -> PostgresConnection.Configuration {
        var c = PostgresConnection.Configuration(host: server.host, port: server.port, username: user, password: password,
                                                 database: database, tls: .disable)
        c.options.connectTimeout = .seconds(3)
        return c
    }

    private static func scheme(of text: Substring) -> String? {
        ["postgres://", "postgresql://"].first(where: { text.hasPrefix($0) })
    }

    /// One URL of the list (which may itself name several hosts).
    private struct Single {
        var user: String
        var password: String?
        var servers: [Server] = []
        var database: String

        init(_ text: String, whole: String) throws(SharedLogError) {
            guard let scheme = SharedLogURL.scheme(of: Substring(text)) else {
                throw .badURL(whole, "it must start with postgres:// (several URLs are separated by commas)")
            }
            var rest = text.dropFirst(scheme.count)
            if let question = rest.firstIndex(of: "?") {
                try Self.checkParameters(rest[rest.index(after: question)...], whole: whole)
                rest = rest[..<question]
            }
            guard let slash = rest.firstIndex(of: "/") else { throw .badURL(whole, "it names no database") }
            let authority = rest[..<slash]
            let path = rest[rest.index(after: slash)...]
            if path.contains("/") { throw .badURL(whole, "paths are not supported: name only the database") }
            database = try Self.decoded(path, whole: whole)
            guard let at = authority.lastIndex(of: "@") else {
                throw .badURL(whole, "it names no user (postgres://user@host:port/db)")
            }
            let userInfo = authority[..<at]
            if let colon = userInfo.firstIndex(of: ":") {
                user = try Self.decoded(userInfo[..<colon], whole: whole)
                password = try Self.decoded(userInfo[userInfo.index(after: colon)...], whole: whole)
            } else {
                user = try Self.decoded(userInfo, whole: whole)
                password = nil
            }
            for hostPort in authority[authority.index(after: at)...].split(separator: ",", omittingEmptySubsequences: false) {
                servers.append(try Self.server(hostPort, whole: whole))
            }
            guard !user.isEmpty, !database.isEmpty else {
                throw .badURL(whole, "user, host and database must not be empty")
            }
        }

        /// `host`, `host:port`, `[v6]` or `[v6]:port`.
        private static func server(_ text: Substring, whole: String) throws(SharedLogError) -> Server {
            var host = text, portText: Substring?
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]") else { throw .badURL(whole, "an IPv6 address lacks its ]") }
                host = text[text.index(after: text.startIndex) ..< close]
                let after = text[text.index(after: close)...]
                if !after.isEmpty {
                    guard after.hasPrefix(":") else { throw .badURL(whole, "unexpected text after ] in \(text)") }
                    portText = after.dropFirst()
                }
            } else if let colon = text.lastIndex(of: ":") {
                host = text[..<colon]
                portText = text[text.index(after: colon)...]
            }
            guard !host.isEmpty else { throw .badURL(whole, "user, host and database must not be empty") }
            var port = 5432
            if let portText {
                guard let p = Int(portText), (1 ... 65535).contains(p) else {
                    throw .badURL(whole, "the port must be a number from 1 to 65535")
                }
                port = p
            }
            return Server(host: String(host), port: port)
        }

        /// Only `target_session_attrs=read-write|primary` (what rusd does regardless).
        private static func checkParameters(_ query: Substring, whole: String) throws(SharedLogError) {
            for pair in query.split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                if kv.count == 2, kv[0] == "target_session_attrs", kv[1] == "read-write" || kv[1] == "primary" { continue }
                throw .badURL(whole, "the parameter \"\(pair)\" is not supported (rusd always uses the writable server, as target_session_attrs=read-write)")
            }
        }

        /// Percent-decoding; a malformed escape or non-UTF-8 result is refused.
        private static func decoded(_ text: Substring, whole: String) throws(SharedLogError) -> String {
            if !text.contains("%") { return String(text) }
            var bytes: [UInt8] = []
            var it = Array(text.utf8)[...]
            while let b = it.popFirst() {
                guard b == UInt8(ascii: "%") else { bytes.append(b); continue }
                guard it.count >= 2, let hi = hexValue(it[it.startIndex]), let lo = hexValue(it[it.startIndex + 1]) else {
                    throw .badURL(whole, "a % must be followed by two hexadecimal digits")
                }
                bytes.append(hi << 4 | lo)
                it = it.dropFirst(2)
            }
            guard let s = String(validating: bytes, as: UTF8.self) else {
                throw .badURL(whole, "a percent-encoded part is not UTF-8")
            }
            return s
        }

        private static func hexValue(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0") ... UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a") ... UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A") ... UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
            default: nil
            }
        }
    }
}

/// Which of the URL's servers answered as writable last (an index into `servers`).
final class LastWritableServer: Sendable {
    private let index = Atomic<Int>(0)
    var value: Int { index.load(ordering: .relaxed) }
    func set(_ i: Int) { index.store(i, ordering: .relaxed) }
}

/// Why the shared log cannot be used; `description` is the message rusd prints before exiting.
public enum SharedLogError: Error, Sendable, CustomStringConvertible {
    case badURL(String, String)
    case unreachable(String, String)
    case incompatibleSchema(url: String, found: Int32, supported: Int32)
    case notASharedLog(url: String, reason: String)
    case aheadOfLog(applied: UInt64, head: UInt64)
    case corruptEntry(index: Int64, reason: String)

    public var description: String {
        switch self {
        case .badURL(let url, let why): "invalid --shared-log \"\(url)\": \(why)"
        case .unreachable(let url, let why): "cannot use the shared log at \(url): \(why)"
        case .incompatibleSchema(let url, let found, let supported):
            "the shared log at \(url) has schema version \(found); this rusd reads only schema version \(supported)"
        case .notASharedLog(let url, let reason):
            "the database at \(url) is not a rusd shared log: \(reason); give rusd a database of its own (an empty one is set up on first use)"
        case .aheadOfLog(let applied, let head):
            "the data dir has applied log index \(applied) but the shared log ends at \(head): it belongs to another cluster or to a single-member rusd; start this member on an empty data dir"
        case .corruptEntry(let index, let reason): "shared log entry \(index) cannot be applied: \(reason)"
        }
    }
}
