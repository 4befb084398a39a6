import Foundation
@testable import GRPCTransport
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import XCTest

/// Our client against our server. Independent clients (grpcio, h2load, raw HTTP/2) are in
/// Tests/compat/test_transport.py.
final class GRPCTransportTests: XCTestCase {
    func testUnaryEchoAndMetadata() async throws {
        let h = try await Harness.start()
        let reply: StringValue = try await h.client.unary("/test.Echo/Unary", StringValue("hello")).get()
        XCTAssertEqual(reply.value, "hello")
        let token: StringValue = try await h.client.unary("/test.Echo/Unary", StringValue("meta:token"),
                                                          metadata: [("token", "abc.def")]).get()
        XCTAssertEqual(token.value, "abc.def")
        // Synchronous handlers run on the connection's event loop.
        XCTAssertEqual(h.observations.handlerThreadsOnLoop.withLockedValue { $0 }, [true, true])
        try await h.stop()
    }

    func testStatusCodeAndEncodedMessage() async throws {
        let h = try await Harness.start()
        do {
            let _: StringValue = try await h.client.unary("/test.Echo/Unary",
                                                          StringValue("fail:9:etcdserver: 100% ünïcode")).get()
            XCTFail("expected an error")
        } catch let status as GRPCStatus {
            XCTAssertEqual(status.code, .failedPrecondition)
            XCTAssertEqual(status.message, "etcdserver: 100% ünïcode")
        }
        try await h.stop()
    }

    func testUnknownServiceAndMethod() async throws {
        let h = try await Harness.start()
        await assertStatus(h.client.unary("/test.Echo/Missing", StringValue(""), responseType: StringValue.self),
                           .unimplemented, "unknown method Missing for service test.Echo")
        await assertStatus(h.client.unary("/no.Such/Thing", StringValue(""), responseType: StringValue.self),
                           .unimplemented, "unknown service no.Such")
        await assertStatus(h.client.unary("/nonsense", StringValue(""), responseType: StringValue.self),
                           .unimplemented, "malformed method name: \"/nonsense\"")
        try await h.stop()
    }

    func testMalformedRequestIsInternal() async throws {
        let h = try await Harness.start()
        var bad = BytesValue()
        bad.value = Data([0xFF, 0xFE])  // not UTF-8: StringValue refuses it
        do {
            let _: StringValue = try await h.client.unary("/test.Echo/Unary", bad).get()
            XCTFail("expected an error")
        } catch let status as GRPCStatus {
            XCTAssertEqual(status.code, .internalError)
            XCTAssertTrue(status.message.hasPrefix("grpc: error unmarshalling request: "), status.message)
        }
        try await h.stop()
    }

    func testOversizedRequestIsResourceExhausted() async throws {
        let h = try await Harness.start { $0.maxReceiveMessageSize = 100 }
        let big = StringValue(String(repeating: "x", count: 500))
        await assertStatus(h.client.unary("/test.Echo/Unary", big, responseType: StringValue.self),
                           .resourceExhausted, "grpc: received message larger than max (503 vs. 100)")
        // The connection survives.
        let reply: StringValue = try await h.client.unary("/test.Echo/Unary", StringValue("ok")).get()
        XCTAssertEqual(reply.value, "ok")
        try await h.stop()
    }

    func testServerStreamingInOrder() async throws {
        let h = try await Harness.start()
        let received = NIOLockedValueBox<[UInt32]>([])
        let status = try await h.client.serverStreaming("/test.Echo/Count", UInt32Value(500),
                                                        responseType: UInt32Value.self) { message in
            received.withLockedValue { $0.append(message.value) }
        }.get()
        XCTAssertEqual(status.code, .ok)
        XCTAssertEqual(received.withLockedValue { $0 }, Array(0..<500))
        try await h.stop()
    }

    func testBidirectionalStreaming() async throws {
        let h = try await Harness.start()
        let received = NIOLockedValueBox<[String]>([])
        let call = h.client.bidirectionalStreaming("/test.Echo/Upper", requestType: StringValue.self,
                                                   responseType: StringValue.self) { message in
            received.withLockedValue { $0.append(message.value) }
        }
        for word in ["a", "bc", "def"] { call.send(StringValue(word)) }
        call.closeSend()
        let status = try await call.status.get()
        XCTAssertEqual(status.code, .ok)
        XCTAssertEqual(received.withLockedValue { $0 }, ["A", "BC", "DEF"])
        try await h.stop()
    }

    func testThousandsOfConcurrentCallsOnOneConnection() async throws {
        let h = try await Harness.start()
        let futures = (0..<2000).map { i in
            h.client.unary("/test.Echo/Delayed", UInt32Value(UInt32(i % 50)), responseType: UInt32Value.self)
        }
        for (i, future) in futures.enumerated() {
            let reply = try await future.get()
            XCTAssertEqual(reply.value, UInt32(i % 50))
        }
        try await h.stop()
    }

    func testDeadlineIsSentAndEnforcedByClient() async throws {
        let h = try await Harness.start()
        let reply: StringValue = try await h.client.unary("/test.Echo/Unary", StringValue("deadline"),
                                                          timeout: .seconds(5)).get()
        let remaining = Int(reply.value)!
        XCTAssertTrue(remaining > 3000 && remaining <= 5000, "remaining \(remaining) ms")
        await assertStatus(h.client.unary("/test.Echo/Delayed", UInt32Value(2000), timeout: .milliseconds(100),
                                          responseType: UInt32Value.self),
                           .deadlineExceeded, "context deadline exceeded")
        try await h.stop()
    }

    func testServerEndsCallsAtTheirDeadline() async throws {
        let h = try await Harness.start()
        // grpc-timeout sent as plain metadata: our client sets no timer of its own, so the
        // status below can only come from the server.
        let deadline = [("grpc-timeout", "100m")]
        await assertStatus(h.client.unary("/test.Echo/Delayed", UInt32Value(300), metadata: deadline,
                                          responseType: UInt32Value.self),
                           .deadlineExceeded, "context deadline exceeded")
        let status = try await h.client.serverStreaming("/test.Echo/Count", UInt32Value(0), metadata: deadline,
                                                        responseType: UInt32Value.self) { _ in }.get()
        XCTAssertEqual(status.code, .deadlineExceeded)
        XCTAssertEqual(status.message, "context deadline exceeded")
        // The never-finishing stream handler saw cancellation.
        XCTAssertEqual(h.observations.cancelledStreams.withLockedValue { $0 }, 1)
        // A call that finishes in time is answered normally.
        let reply: UInt32Value = try await h.client.unary("/test.Echo/Delayed", UInt32Value(1),
                                                          metadata: [("grpc-timeout", "5S")]).get()
        XCTAssertEqual(reply.value, 1)
        try await h.stop()
        // The Delayed(300) handler completes now, after its call ended and the event loops shut
        // down: the completion must be dropped without a hop (NIO warns "Cannot schedule tasks
        // on an EventLoop that has already shut down", and will crash in future versions).
        try await Task.sleep(nanoseconds: 300_000_000)
    }

    func testGRPCTimeoutParsing() {
        XCTAssertEqual(parseGRPCTimeout("100m"), .milliseconds(100))
        XCTAssertEqual(parseGRPCTimeout("99999999n"), .nanoseconds(99_999_999))
        XCTAssertEqual(parseGRPCTimeout("-1S"), .seconds(-1))
        XCTAssertEqual(parseGRPCTimeout("+2M"), .minutes(2))
        XCTAssertEqual(parseGRPCTimeout("99999999H"), .nanoseconds(Int64.max))
        for bad in ["", "S", "1", "1x", "123456789S", "1S ", " 1S", "1.5S", "-S", "0xS", "1\u{0600}S"] {
            XCTAssertNil(parseGRPCTimeout(bad), bad)
        }
    }

    func testClientCancelNotifiesServerStream() async throws {
        let h = try await Harness.start()
        let call = h.client.bidirectionalStreaming("/test.Echo/Count", requestType: UInt32Value.self,
                                                   responseType: UInt32Value.self) { _ in }
        call.send(UInt32Value(0))  // the handler never finishes
        call.closeSend()
        try await Task.sleep(nanoseconds: 100_000_000)
        call.cancel()
        let status = try await call.status.get()
        XCTAssertEqual(status.code, .cancelled)
        for _ in 0..<100 where h.observations.cancelledStreams.withLockedValue({ $0 }) == 0 {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        XCTAssertEqual(h.observations.cancelledStreams.withLockedValue { $0 }, 1)
        try await h.stop()
    }

    func testGracefulShutdownDrainsInFlightCalls() async throws {
        let h = try await Harness.start()
        let inFlight = h.client.unary("/test.Echo/Delayed", UInt32Value(300), responseType: UInt32Value.self)
        try await Task.sleep(nanoseconds: 100_000_000)
        let shutdown = h.server.shutdown(gracePeriod: .seconds(5))
        let reply = try await inFlight.get()
        XCTAssertEqual(reply.value, 300)
        try await shutdown.get()
        XCTAssertEqual(h.server.connectionCount, 0)
        // A new call on the closed connection fails with UNAVAILABLE.
        await assertStatus(h.client.unary("/test.Echo/Unary", StringValue("x"), responseType: StringValue.self),
                           .unavailable, nil)
        try await h.group.shutdownGracefully()
    }

    func testHealthCheck() async throws {
        let h = try await Harness.start()
        var request = Grpc_Health_V1_HealthCheckRequest()
        let reply: Grpc_Health_V1_HealthCheckResponse = try await h.client.unary(
            "/grpc.health.v1.Health/Check", request).get()
        XCTAssertEqual(reply.status, .serving)
        request.service = "unknown"
        await assertStatus(h.client.unary("/grpc.health.v1.Health/Check", request,
                                          responseType: Grpc_Health_V1_HealthCheckResponse.self),
                           .notFound, "unknown service")
        try await h.stop()
    }

    func testPercentEncoding() {
        XCTAssertEqual(GRPCStatus.percentEncode("plain text"), "plain text")
        XCTAssertEqual(GRPCStatus.percentEncode("50%\n"), "50%25%0A")
        XCTAssertEqual(GRPCStatus.percentEncode("é"), "%C3%A9")
        XCTAssertEqual(GRPCStatus.percentDecode("50%25%0A%C3%A9"), "50%\né")
        XCTAssertEqual(GRPCStatus.percentDecode("bad %zz"), "bad %zz")
    }

    private func assertStatus<T: Sendable>(_ future: EventLoopFuture<T>, _ code: GRPCStatus.Code, _ message: String?,
                                 file: StaticString = #filePath, line: UInt = #line) async {
        do {
            _ = try await future.get()
            XCTFail("expected \(code)", file: file, line: line)
        } catch let status as GRPCStatus {
            XCTAssertEqual(status.code, code, status.message, file: file, line: line)
            if let message { XCTAssertEqual(status.message, message, file: file, line: line) }
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }
}
