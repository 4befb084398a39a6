import EtcdProto
@testable import EtcdServer
import GRPCTransport
import MVCC
import XCTest
@testable import EtcdAPI

final class MetricsTests: XCTestCase {
    /// etcd's disk buckets (ExponentialBuckets(0.001, 2, 14)); `le` is inclusive; cumulative.
    func testDurationHistogramBuckets() {
        let h = ValueHistogram.etcdDiskBuckets()
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
        XCTAssertEqual(s.sum, 20.0045, accuracy: 1e-9)
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

    /// --metrics extensive: per-method handling time in go-grpc-prometheus' buckets; one set of
    /// counters per method however often it is asked for (the gateway asks again).
    func testHandlingSecondsAndSharedMethodCounters() {
        let metrics = GRPCServerMetrics(handlingTime: true)
        let put = metrics.monitor(service: "etcdserverpb.KV", method: "Put", kind: .unary)!
        let again = metrics.monitor(service: "etcdserverpb.KV", method: "Put", kind: .unary)!
        XCTAssertTrue(put === again)
        put.started()
        put.handled(.ok, seconds: 0.003)
        again.started()
        again.handled(.ok, seconds: 0.2)
        let text = metrics.text()
        let l = "grpc_method=\"Put\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\""
        XCTAssertTrue(text.contains("# TYPE grpc_server_handling_seconds histogram\n"), text)
        XCTAssertTrue(text.contains("grpc_server_handling_seconds_bucket{\(l),le=\"0.005\"} 1\n"), text)
        XCTAssertTrue(text.contains("grpc_server_handling_seconds_bucket{\(l),le=\"0.1\"} 1\n"), text)
        XCTAssertTrue(text.contains("grpc_server_handling_seconds_bucket{\(l),le=\"0.25\"} 2\n"), text)
        XCTAssertTrue(text.contains("grpc_server_handling_seconds_bucket{\(l),le=\"+Inf\"} 2\n"), text)
        XCTAssertTrue(text.contains("grpc_server_handling_seconds_count{\(l)} 2\n"), text)
        XCTAssertTrue(text.contains("grpc_server_started_total{\(l)} 2\n"), text)
        XCTAssertFalse(GRPCServerMetrics().text().contains("grpc_server_handling_seconds"))
    }

    /// etcd counts per MVCC transaction; one txn when its ranges + puts + deletes exceed 1.
    func testMVCCTallyFollowsEtcdTransactions() {
        let c = ServerCounters()
        var put = Etcdserverpb_PutRequest()
        put.key = Data("ab".utf8)
        put.value = Data("xyz".utf8)
        c.recordPut(put)                                   // 1 put: no txn
        put.prevKv = true
        c.recordPut(put)                                   // range + put: a txn
        var s = c.snapshot
        XCTAssertEqual([s.ranges, s.puts, s.deletes, s.txns, s.putBytes], [1, 2, 0, 1, 10])

        var txn = Etcdserverpb_TxnRequest()
        txn.compare = [Etcdserverpb_Compare(), Etcdserverpb_Compare()]
        var opPut = Etcdserverpb_RequestOp()
        opPut.requestPut = put
        var opDel = Etcdserverpb_RequestOp()
        opDel.requestDeleteRange = Etcdserverpb_DeleteRangeRequest()
        txn.success = [opPut]
        txn.failure = [opDel, opDel]
        var resp = Etcdserverpb_TxnResponse()
        resp.succeeded = false                             // the failure branch ran: 2 deletes
        resp.responses = [Etcdserverpb_ResponseOp(), Etcdserverpb_ResponseOp()]
        c.recordTxn(txn, resp, wrote: true)                // compares (2 ranges) and 2 deletes: 2 txns
        s = c.snapshot
        XCTAssertEqual([s.ranges, s.puts, s.deletes, s.txns, s.putBytes], [3, 2, 2, 3, 10])
    }

    /// Message and byte counts; a client cannot grow the version label set without bound.
    func testMessageCountsAndClientVersions() {
        let metrics = GRPCServerMetrics()
        let watch = metrics.monitor(service: "etcdserverpb.Watch", method: "Watch", kind: .bidiStream)!
        for i in 0..<40 { watch.started(metadata: ["client-api-version": "9.\(i)"]) }
        watch.received(messageBytes: 7)
        watch.received(messageBytes: 5)
        watch.sent(messageBytes: 30)
        let text = metrics.text()
        let w = "grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\""
        XCTAssertTrue(text.contains("grpc_server_msg_received_total{\(w)} 2\n"), text)
        XCTAssertTrue(text.contains("grpc_server_msg_sent_total{\(w)} 1\n"), text)
        XCTAssertTrue(text.contains("etcd_network_client_grpc_received_bytes_total 12\n"), text)
        XCTAssertTrue(text.contains("etcd_network_client_grpc_sent_bytes_total 30\n"), text)
        let versions = text.split(separator: "\n").filter { $0.hasPrefix("etcd_server_client_requests_total{") }
        XCTAssertEqual(versions.count, GRPCServerMetrics.MessageTotals.maxVersions + 1)
        XCTAssertTrue(text.contains("etcd_server_client_requests_total{client_api_version=\"unknown\",type=\"stream\"} 24\n"), text)
    }

    /// process_* figures come from /proc/self.
    func testProcessMetricsRead() {
        let m = ProcessMetrics.read()
        XCTAssertGreaterThan(m.residentBytes ?? 0, 1_048_576)
        XCTAssertGreaterThan(m.openFDs ?? 0, 2)
        XCTAssertGreaterThan(m.threads ?? 0, 0)
        let start = m.startTimeSeconds ?? 0
        XCTAssertLessThan(abs(start - Double(time(nil))), 3 * 86400)
    }
}
