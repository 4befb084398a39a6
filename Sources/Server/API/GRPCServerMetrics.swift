import GRPCTransport
import MVCC
import Synchronization

/// go-grpc-prometheus' server counters, which etcd exports: `grpc_server_started_total`,
/// `grpc_server_handled_total` (and grpc_code), `grpc_server_msg_received_total` and
/// `grpc_server_msg_sent_total` by grpc_type, grpc_service, grpc_method; and etcd's own
/// `etcd_network_client_grpc_received_bytes_total` / `_sent_bytes_total` (message bytes as
/// etcd's codec counts them) and `etcd_server_client_requests_total` (by the client's
/// `client-api-version` metadata and "unary"/"stream", as etcd's interceptors count).
/// Set it as the transport's `callMonitor`; every registered method is listed from the start
/// with zero counts, for every code, as go-grpc-prometheus' `Register` does.
/// With `handlingTime` (etcd's `--metrics extensive`), also `grpc_server_handling_seconds`
/// by grpc_type, grpc_service, grpc_method with go-grpc-prometheus' buckets (Prometheus'
/// DefBuckets); etcd's default (`basic`) leaves that family out.
/// The HTTP/JSON gateway's calls count here too (it asks `monitor` for the same method's
/// counters), as etcd's gateway is a gRPC client of its own server.
///
/// Counting is relaxed atomic adds per call start, message and call end (the hot path serves
/// tens of thousands of calls per second on every event loop); the client-version count takes
/// one short lock per call.
public final class GRPCServerMetrics: GRPCCallMonitor {
    /// The counters of one method.
    final class MethodCounters: GRPCMethodMonitor {
        let service: String
        let method: String
        let kind: GRPCMethodKind
        let startedCount = Atomic<UInt64>(0)
        let receivedCount = Atomic<UInt64>(0)
        let sentCount = Atomic<UInt64>(0)
        /// Indexed by gRPC code (0...16).
        let handledCounts: [AtomicCounter]
        let totals: MessageTotals
        /// Seconds from start to end of each call (nil: not exported).
        let handlingSeconds: ValueHistogram?

        init(service: String, method: String, kind: GRPCMethodKind, totals: MessageTotals, handlingTime: Bool) {
            self.service = service
            self.method = method
            self.kind = kind
            self.totals = totals
            handledCounts = (0...GRPCServerMetrics.maxCode).map { _ in AtomicCounter() }
            handlingSeconds = handlingTime ? ValueHistogram(bounds: GRPCServerMetrics.handlingBuckets) : nil
        }

        func started() {
            startedCount.wrappingAdd(1, ordering: .relaxed)
        }

        func started(metadata: [String: String]) {
            started()
            totals.clientRequest(stream: kind != .unary, apiVersion: metadata["client-api-version"])
        }

        func received(messageBytes: Int) {
            receivedCount.wrappingAdd(1, ordering: .relaxed)
            totals.receivedBytes.wrappingAdd(UInt64(max(0, messageBytes)), ordering: .relaxed)
        }

        func sent(messageBytes: Int) {
            sentCount.wrappingAdd(1, ordering: .relaxed)
            totals.sentBytes.wrappingAdd(UInt64(max(0, messageBytes)), ordering: .relaxed)
        }

        func handled(_ code: GRPCStatus.Code) {
            let i = (0...GRPCServerMetrics.maxCode).contains(code.rawValue) ? code.rawValue : GRPCStatus.Code.unknown.rawValue
            handledCounts[i].value.wrappingAdd(1, ordering: .relaxed)
        }

        func handled(_ code: GRPCStatus.Code, seconds: Double) {
            handled(code)
            handlingSeconds?.observe(seconds)
        }
    }

    final class AtomicCounter: Sendable {
        let value = Atomic<UInt64>(0)
    }

    /// The server-wide numbers: message bytes and client requests by API version.
    final class MessageTotals: Sendable {
        let receivedBytes = Atomic<UInt64>(0)
        let sentBytes = Atomic<UInt64>(0)
        /// (type, client_api_version) -> count. A client picks the version label, so at most
        /// `maxVersions` distinct ones are kept; later ones count as "unknown".
        let requests = Mutex<[RequestKey: UInt64]>([:])
        static let maxVersions = 16

        struct RequestKey: Hashable, Sendable {
            var type: String
            var version: String
        }

        func clientRequest(stream: Bool, apiVersion: String?) {
            let type = stream ? "stream" : "unary"
            var version = apiVersion ?? "unknown"
            if version.utf8.count > 32 { version = "unknown" }
            requests.withLock { counts in
                var key = RequestKey(type: type, version: version)
                if counts[key] == nil, Set(counts.keys.map(\.version)).count >= Self.maxVersions {
                    key.version = "unknown"
                }
                counts[key, default: 0] &+= 1
            }
        }
    }

    static let maxCode = GRPCStatus.Code.unauthenticated.rawValue
    /// go-grpc-prometheus' handling-time buckets (Prometheus' DefBuckets), in seconds.
    static let handlingBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// By "service/method": one set of counters per method, however often it is asked for.
    private let methods = Mutex<[String: MethodCounters]>([:])
    let totals = MessageTotals()
    let handlingTime: Bool

    /// `handlingTime`: export grpc_server_handling_seconds (etcd's `--metrics extensive`).
    public init(handlingTime: Bool = false) {
        self.handlingTime = handlingTime
    }

    /// The counters of a method (the same object on every call for the same method).
    public func monitor(service: String, method: String, kind: GRPCMethodKind) -> (any GRPCMethodMonitor)? {
        methods.withLock { table in
            let key = service + "/" + method
            if let existing = table[key] { return existing }
            let counters = MethodCounters(service: service, method: method, kind: kind, totals: totals,
                                          handlingTime: handlingTime)
            table[key] = counters
            return counters
        }
    }

    /// The counter families in Prometheus text format.
    func text() -> String {
        let all = methods.withLock { Array($0.values) }.sorted { ($0.service, $0.method) < ($1.service, $1.method) }
        func labels(_ m: MethodCounters) -> String {
            "grpc_method=\"\(PrometheusMetrics.escape(m.method))\",grpc_service=\"\(PrometheusMetrics.escape(m.service))\",grpc_type=\"\(m.kind.rawValue)\""
        }
        var out = "# HELP grpc_server_started_total Total number of RPCs started on the server.\n"
        out += "# TYPE grpc_server_started_total counter\n"
        for m in all {
            out += "grpc_server_started_total{\(labels(m))} \(m.startedCount.load(ordering: .relaxed))\n"
        }
        out += "# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.\n"
        out += "# TYPE grpc_server_handled_total counter\n"
        for m in all {
            let l = labels(m)
            for code in 0...Self.maxCode {
                out += "grpc_server_handled_total{grpc_code=\"\(GRPCStatus.Code(rawValue: code))\",\(l)} \(m.handledCounts[code].value.load(ordering: .relaxed))\n"
            }
        }
        out += "# HELP grpc_server_msg_received_total Total number of RPC stream messages received on the server.\n"
        out += "# TYPE grpc_server_msg_received_total counter\n"
        for m in all {
            out += "grpc_server_msg_received_total{\(labels(m))} \(m.receivedCount.load(ordering: .relaxed))\n"
        }
        out += "# HELP grpc_server_msg_sent_total Total number of gRPC stream messages sent by the server.\n"
        out += "# TYPE grpc_server_msg_sent_total counter\n"
        for m in all {
            out += "grpc_server_msg_sent_total{\(labels(m))} \(m.sentCount.load(ordering: .relaxed))\n"
        }
        if handlingTime {
            out += "# HELP grpc_server_handling_seconds Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.\n"
            out += "# TYPE grpc_server_handling_seconds histogram\n"
            for m in all {
                guard let h = m.handlingSeconds?.snapshot else { continue }
                out += PrometheusMetrics.histogramSamples("grpc_server_handling_seconds", labels: labels(m), h)
            }
        }
        out += "# HELP etcd_network_client_grpc_received_bytes_total The total number of bytes received from grpc clients.\n"
        out += "# TYPE etcd_network_client_grpc_received_bytes_total counter\n"
        out += "etcd_network_client_grpc_received_bytes_total \(totals.receivedBytes.load(ordering: .relaxed))\n"
        out += "# HELP etcd_network_client_grpc_sent_bytes_total The total number of bytes sent to grpc clients.\n"
        out += "# TYPE etcd_network_client_grpc_sent_bytes_total counter\n"
        out += "etcd_network_client_grpc_sent_bytes_total \(totals.sentBytes.load(ordering: .relaxed))\n"
        out += "# HELP etcd_server_client_requests_total The total number of client requests per client version.\n"
        out += "# TYPE etcd_server_client_requests_total counter\n"
        let requests = totals.requests.withLock { $0 }.sorted { ($0.key.version, $0.key.type) < ($1.key.version, $1.key.type) }
        for (key, count) in requests {
            out += "etcd_server_client_requests_total{client_api_version=\"\(PrometheusMetrics.escape(key.version))\",type=\"\(key.type)\"} \(count)\n"
        }
        return out
    }
}
