import EtcdServer
import GRPCTransport
import XCTest
@testable import EtcdAPI

final class MetricsTests: XCTestCase {
    /// etcd's disk buckets (ExponentialBuckets(0.001, 2, 14)); `le` is inclusive; cumulative.
    func testDurationHistogramBuckets() {
        let h = DurationHistogram.etcdDiskBuckets()
        XCTAssertEqual(h.bounds.count, 14)
        XCTAssertEqual(h.bounds.first, 0.001)
        XCTAssertEqual(h.bounds.last, 8.192)
        h.observe(.microseconds(500))
        h.observe(.milliseconds(1))
        h.observe(.milliseconds(3))
        h.observe(.seconds(20))
        let s = h.snapshot
        XCTAssertEqual(s.count, 4)
        XCTAssertEqual(Array(s.cumulativeCounts.prefix(4)), [2, 2, 3, 3])
        XCTAssertEqual(s.cumulativeCounts.last, 3)
        XCTAssertEqual(s.sumSeconds, 20.0045, accuracy: 1e-9)
        let text = PrometheusMetrics.histogram("x_seconds", "help", s)
        XCTAssertTrue(text.contains("x_seconds_bucket{le=\"0.001\"} 2\n"), text)
        XCTAssertTrue(text.contains("x_seconds_bucket{le=\"8.192\"} 3\n"), text)
        XCTAssertTrue(text.contains("x_seconds_bucket{le=\"+Inf\"} 4\nx_seconds_sum 20.0045\nx_seconds_count 4\n"), text)
    }

    /// go-grpc-prometheus' families: every method listed from the start, every code for handled.
    func testGRPCServerMetricsText() {
        let metrics = GRPCServerMetrics()
        let range = metrics.monitor(service: "etcdserverpb.KV", method: "Range", kind: .unary)!
        _ = metrics.monitor(service: "etcdserverpb.Watch", method: "Watch", kind: .bidiStream)
        range.started()
        range.handled(.ok)
        range.started()
        range.handled(.permissionDenied)
        let text = metrics.text()
        let kv = "grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\""
        XCTAssertTrue(text.contains("grpc_server_started_total{\(kv)} 2\n"), text)
        XCTAssertTrue(text.contains("grpc_server_handled_total{grpc_code=\"OK\",\(kv)} 1\n"), text)
        XCTAssertTrue(text.contains("grpc_server_handled_total{grpc_code=\"PermissionDenied\",\(kv)} 1\n"), text)
        XCTAssertTrue(text.contains("grpc_server_handled_total{grpc_code=\"Unavailable\",\(kv)} 0\n"), text)
        XCTAssertTrue(text.contains("grpc_server_started_total{grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\"} 0\n"), text)
        XCTAssertEqual(text.split(separator: "\n").filter { $0.hasPrefix("grpc_server_handled_total{") }.count, 2 * 17)
    }
}
