import Foundation
import GRPCTransport
import NIOConcurrencyHelpers
import XCTest

/// Records what a `GRPCCallMonitor` is told: registrations, starts and ends per method.
final class RecordingCallMonitor: GRPCCallMonitor {
    final class Method: GRPCMethodMonitor {
        let events = NIOLockedValueBox<[String]>([])
        func started() { events.withLockedValue { $0.append("started") } }
        func handled(_ code: GRPCStatus.Code) { events.withLockedValue { $0.append("handled \(code)") } }
    }
    let methods = NIOLockedValueBox<[String: Method]>([:])

    func monitor(service: String, method: String, kind: GRPCMethodKind) -> (any GRPCMethodMonitor)? {
        let m = Method()
        methods.withLockedValue { $0["\(service)/\(method) \(kind.rawValue)"] = m }
        return m
    }

    func events(_ key: String) -> [String] {
        methods.withLockedValue { $0[key] }?.events.withLockedValue { $0 } ?? ["<not registered>"]
    }
}

final class CallMonitorTests: XCTestCase {
    func testEveryMethodIsRegisteredWithItsKind() async throws {
        let monitor = RecordingCallMonitor()
        let h = try await Harness.start { $0.callMonitor = monitor }
        XCTAssertEqual(Set(monitor.methods.withLockedValue { Array($0.keys) }), [
            "test.Echo/Unary unary", "test.Echo/Delayed unary", "test.Echo/Count server_stream",
            "test.Echo/Upper bidi_stream", "grpc.health.v1.Health/Check unary",
            "grpc.health.v1.Health/Watch server_stream",
        ])
        try await h.stop()
    }

    func testStartAndEndOncePerCallWithTheStatusSent() async throws {
        let monitor = RecordingCallMonitor()
        let h = try await Harness.start { $0.callMonitor = monitor; $0.maxReceiveMessageSize = 100 }
        let _: StringValue = try await h.client.unary("/test.Echo/Unary", StringValue("hi")).get()
        _ = try? await h.client.unary("/test.Echo/Unary", StringValue("fail:9:no"), responseType: StringValue.self).get()
        // Never reach the handler: not observed (as grpc-go's interceptors).
        var bad = BytesValue()
        bad.value = Data([0xFF, 0xFE])
        _ = try? await h.client.unary("/test.Echo/Unary", bad, responseType: StringValue.self).get()
        _ = try? await h.client.unary("/test.Echo/Unary", StringValue(String(repeating: "x", count: 500)),
                                      responseType: StringValue.self).get()
        _ = try? await h.client.unary("/test.Echo/Missing", StringValue(""), responseType: StringValue.self).get()
        XCTAssertEqual(monitor.events("test.Echo/Unary unary"),
                       ["started", "handled OK", "started", "handled FailedPrecondition"])

        let status = try await h.client.serverStreaming("/test.Echo/Count", UInt32Value(3),
                                                        responseType: UInt32Value.self) { _ in }.get()
        XCTAssertEqual(status.code, .ok)
        XCTAssertEqual(monitor.events("test.Echo/Count server_stream"), ["started", "handled OK"])

        let upper = h.client.bidirectionalStreaming("/test.Echo/Upper", requestType: StringValue.self,
                                                    responseType: StringValue.self) { _ in }
        upper.send(StringValue("a"))
        upper.send(StringValue("b"))
        upper.closeSend()
        _ = try await upper.status.get()
        XCTAssertEqual(monitor.events("test.Echo/Upper bidi_stream"), ["started", "handled OK"])

        // A stream the client cancels before the handler finishes it: Canceled, once.
        let pending = h.client.bidirectionalStreaming("/test.Echo/Upper", requestType: StringValue.self,
                                                      responseType: StringValue.self) { _ in }
        pending.send(StringValue("x"))
        try await Task.sleep(nanoseconds: 100_000_000)
        pending.cancel()
        _ = try? await pending.status.get()
        for _ in 0..<100 where monitor.events("test.Echo/Upper bidi_stream").count < 4 {
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        XCTAssertEqual(monitor.events("test.Echo/Upper bidi_stream"),
                       ["started", "handled OK", "started", "handled Canceled"])

        // A call whose deadline passes first (grpc-timeout as metadata: only the server's timer
        // runs): DeadlineExceeded, once, and the late completion changes nothing.
        _ = try? await h.client.unary("/test.Echo/Delayed", UInt32Value(200), metadata: [("grpc-timeout", "50m")],
                                      responseType: UInt32Value.self).get()
        try await Task.sleep(nanoseconds: 250_000_000)
        XCTAssertEqual(monitor.events("test.Echo/Delayed unary"), ["started", "handled DeadlineExceeded"])
        try await h.stop()
    }
}
