import EtcdServer
import GRPCTransport
import WatchHub

/// The HTTP/1.1 endpoints etcd serves on its client port: /health, /livez, /readyz, /version,
/// /metrics.
///
/// /health answers `{"health":"true","reason":""}`; while an alarm is active it answers 503
/// with `{"health":"false","reason":"ALARM NOSPACE"}` (etcd 3.5's shape), unless the alarm is
/// excluded with `?exclude=NOSPACE`. /metrics: see `PrometheusMetrics`.
public struct HTTPEndpoints: Sendable {
    let server: EtcdServer
    let member: LocalMember
    let grpcMetrics: GRPCServerMetrics?
    let watchHub: WatchHub?

    /// `grpcMetrics`: the client transport's call counters, and `watchHub`: the watchers,
    /// shown on /metrics.
    public init(server: EtcdServer, member: LocalMember? = nil, grpcMetrics: GRPCServerMetrics? = nil,
                watchHub: WatchHub? = nil) {
        self.server = server
        self.member = member ?? LocalMember(name: "default", peerURLs: [], clientURLs: [], alarms: server.alarms)
        self.grpcMetrics = grpcMetrics
        self.watchHub = watchHub
    }

    /// The client port's HTTP handler: `gateway` (etcd's /v3/ JSON API) first, when given,
    /// then these endpoints. The metrics port (--listen-metrics-urls) serves no gateway.
    public func handler(gateway: Gateway?) -> HTTP1Handler {
        { request, loop in
            gateway?.respond(to: request, on: loop) ?? loop.makeSucceededFuture(respond(to: request))
        }
    }

    public func respond(to request: HTTP1Request) -> HTTP1Response {
        guard request.method == "GET" || request.method == "HEAD" else {
            return HTTP1Response(status: 405, body: "Method Not Allowed\n")
        }
        switch request.path {
        case "/health":
            return health(excluding: Self.queryValues(request.uri, "exclude"))
        case "/livez", "/readyz":
            return HTTP1Response(status: 200, body: "ok")
        case "/version":
            return HTTP1Response(status: 200, contentType: "application/json",
                                 body: "{\"etcdserver\":\"\(ReportedVersion.server)\",\"etcdcluster\":\"\(ReportedVersion.cluster)\"}")
        case "/metrics":
            return HTTP1Response(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8",
                                 body: PrometheusMetrics(server: server, member: member, grpc: grpcMetrics, watch: watchHub).text())
        default:
            return HTTP1Response(status: 404, body: "404 page not found\n")
        }
    }

    private func health(excluding excluded: [String]) -> HTTP1Response {
        for alarm in member.alarms.get() {
            let name = AlarmList.name(alarm.alarm)
            if excluded.contains(name) { continue }
            server.counters.recordHealthCheck(healthy: false)
            return HTTP1Response(status: 503, contentType: "application/json",
                                 body: "{\"health\":\"false\",\"reason\":\"ALARM \(name)\"}")
        }
        server.counters.recordHealthCheck(healthy: true)
        return HTTP1Response(status: 200, contentType: "application/json", body: "{\"health\":\"true\",\"reason\":\"\"}")
    }

    /// The values of query parameter `name` in `uri` (no percent-decoding: alarm names need none).
    static func queryValues(_ uri: String, _ name: String) -> [String] {
        guard let q = uri.firstIndex(of: "?") else { return [] }
        return uri[uri.index(after: q)...].split(separator: "&").compactMap { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return parts.count == 2 && parts[0] == name ? String(parts[1]) : nil
        }
    }
}
