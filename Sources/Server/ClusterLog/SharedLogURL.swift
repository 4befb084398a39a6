import PostgresNIO

/// `--shared-log postgres://user[:password]@host[:port]/database`: the PostgreSQL database that
/// holds the cluster's log. `description` never shows the password.
public struct SharedLogURL: Sendable, CustomStringConvertible {
    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String

    /// Parses the flag's value; a clear `SharedLogError.badURL` for anything else.
    public init(_ text: String) throws(SharedLogError) {
        guard let scheme = ["postgres://", "postgresql://"].first(where: { text.hasPrefix($0) }) else {
            throw .badURL(text, "it must start with postgres://")
        }
        let rest = text.dropFirst(scheme.count)
        guard let slash = rest.firstIndex(of: "/") else { throw .badURL(text, "it names no database") }
        let authority = rest[..<slash]
        database = String(rest[rest.index(after: slash)...])
        if database.contains(where: { $0 == "?" || $0 == "/" }) {
            throw .badURL(text, "query parameters and paths are not supported")
        }
        guard let at = authority.lastIndex(of: "@") else { throw .badURL(text, "it names no user (postgres://user@host:port/db)") }
        let userInfo = authority[..<at]
        let hostPort = authority[authority.index(after: at)...]
        if let colon = userInfo.firstIndex(of: ":") {
            user = String(userInfo[..<colon])
            password = String(userInfo[userInfo.index(after: colon)...])
        } else {
            user = String(userInfo)
            password = nil
        }
        if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            guard let p = Int(hostPort[hostPort.index(after: colon)...]), (1 ... 65535).contains(p) else {
                throw .badURL(text, "the port must be a number from 1 to 65535")
            }
            port = p
        } else {
            host = String(hostPort)
            port = 5432
        }
        guard !user.isEmpty, !host.isEmpty, !database.isEmpty else {
            throw .badURL(text, "user, host and database must not be empty")
        }
    }

    public var description: String { "postgres://\(user)@\(host):\(port)/\(database)" }

    var configuration: PostgresConnection.Configuration {
        var c = PostgresConnection.Configuration(host: host, port: port, username: user, password: password,
                                                 database: database, tls: .disable)
        c.options.connectTimeout = .seconds(3)
        return c
    }
}

/// Why the shared log cannot be used; `description` is the message rusd prints before exiting.
public enum SharedLogError: Error, Sendable, CustomStringConvertible {
    case badURL(String, String)
    case unreachable(String, String)
    case incompatibleSchema(url: String, found: Int32, supported: Int32)
    case aheadOfLog(applied: UInt64, head: UInt64)
    case corruptEntry(index: Int64, reason: String)

    public var description: String {
        switch self {
        case .badURL(let url, let why): "invalid --shared-log \"\(url)\": \(why)"
        case .unreachable(let url, let why): "cannot use the shared log at \(url): \(why)"
        case .incompatibleSchema(let url, let found, let supported):
            "the shared log at \(url) has schema version \(found); this rusd reads only schema version \(supported)"
        case .aheadOfLog(let applied, let head):
            "the data dir has applied log index \(applied) but the shared log ends at \(head): it belongs to another cluster or to a single-member rusd; start this member on an empty data dir"
        case .corruptEntry(let index, let reason): "shared log entry \(index) cannot be applied: \(reason)"
        }
    }
}
