import GRPCTransport
import Synchronization

/// go-grpc-prometheus' server counters, which etcd exports: `grpc_server_started_total` and
/// `grpc_server_handled_total` by grpc_type, grpc_service, grpc_method (and grpc_code).
/// Set it as the transport's `callMonitor`; every registered method is listed from the start
/// with zero counts, for every code, as go-grpc-prometheus' `Register` does.
///
/// Counting is one relaxed atomic add per call start and per call end (the hot path serves
/// tens of thousands of calls per second on every event loop).
public final class GRPCServerMetrics: GRPCCallMonitor {
    /// The counters of one method.
    final class MethodCounters: GRPCMethodMonitor {
        let service: String
        let method: String
        let kind: GRPCMethodKind
        let startedCount = Atomic<UInt64>(0)
        /// Indexed by gRPC code (0...16).
        let handledCounts: [AtomicCounter]

        init(service: String, method: String, kind: GRPCMethodKind) {
            self.service = service
            self.method = method
            self.kind = kind
            handledCounts = (0...GRPCServerMetrics.maxCode).map { _ in AtomicCounter() }
        }

        func started() {
            startedCount.wrappingAdd(1, ordering: .relaxed)
        }

        func handled(_ code: GRPCStatus.Code) {
            let i = (0...GRPCServerMetrics.maxCode).contains(code.rawValue) ? code.rawValue : GRPCStatus.Code.unknown.rawValue
            handledCounts[i].value.wrappingAdd(1, ordering: .relaxed)
        }
    }

    final class AtomicCounter: Sendable {
        let value = Atomic<UInt64>(0)
    }

    static let maxCode = GRPCStatus.Code.unauthenticated.rawValue
    private let methods = Mutex<[MethodCounters]>([])

    public init() {}

    public func monitor(service: String, method: String, kind: GRPCMethodKind) -> (any GRPCMethodMonitor)? {
        let counters = MethodCounters(service: service, method: method, kind: kind)
        methods.withLock { $0.append(counters) }
        return counters
    }

    /// The two counter families in Prometheus text format.
    func text() -> String {
        let all = methods.withLock { $0 }.sorted { ($0.service, $0.method) < ($1.service, $1.method) }
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
        return out
    }
}
