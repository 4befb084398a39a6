import EtcdServer
import GRPCTransport

/// The HTTP/1.1 endpoints etcd serves on its client port: /health, /livez, /readyz, /version,
/// /metrics.
public struct HTTPEndpoints: Sendable {
    let server: EtcdServer

    public init(server: EtcdServer) {
        self.server = server
    }

    public func respond(to request: HTTP1Request) -> HTTP1Response {
        guard request.method == "GET" || request.method == "HEAD" else {
            return HTTP1Response(status: 405, body: "Method Not Allowed\n")
        }
        switch request.path {
        case "/health":
            return HTTP1Response(status: 200, contentType: "application/json", body: "{\"health\":\"true\",\"reason\":\"\"}")
        case "/livez", "/readyz":
            return HTTP1Response(status: 200, body: "ok")
        case "/version":
            return HTTP1Response(status: 200, contentType: "application/json",
                                 body: "{\"etcdserver\":\"\(ReportedVersion.server)\",\"etcdcluster\":\"\(ReportedVersion.cluster)\"}")
        case "/metrics":
            return HTTP1Response(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metricsText())
        default:
            return HTTP1Response(status: 404, body: "404 page not found\n")
        }
    }

    private func metricsText() -> String {
        """
        # HELP etcd_server_has_leader Whether or not a leader exists. 1 is existence, 0 is not.
        # TYPE etcd_server_has_leader gauge
        etcd_server_has_leader 1
        # HELP etcd_server_is_leader Whether or not this member is a leader. 1 if is, 0 otherwise.
        # TYPE etcd_server_is_leader gauge
        etcd_server_is_leader 1
        # HELP etcd_debugging_mvcc_current_revision The current revision of store.
        # TYPE etcd_debugging_mvcc_current_revision gauge
        etcd_debugging_mvcc_current_revision \(server.currentRevision)

        """
    }
}
