import Foundation
@testable import GRPCTransport
import NIOCore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// HTTP/1.1 on the gRPC port, judged from raw bytes on a socket: the request timeout (the
/// handshake timeout, here shortened), pipelined requests answered in order, and a request
/// that does not parse answered 400 and closed.
final class HTTP1ConnectionTests: XCTestCase {
    /// `/slow` answers after 300 ms, everything else at once; the body names the path.
    static func start(timeout: TimeAmount = .seconds(120)) async throws -> Harness {
        try await Harness.start {
            $0.limits.handshakeTimeout = timeout
            $0.http1Handler = { request, loop in
                let response = HTTP1Response(status: 200, body: request.path)
                guard request.path == "/slow" else { return loop.makeSucceededFuture(response) }
                return loop.scheduleTask(in: .milliseconds(300)) { response }.futureResult
            }
        }
    }

    func testPartialRequestIsClosedAfterTheTimeout() async throws {
        let h = try await Self.start(timeout: .milliseconds(400))
        let partial = try HTTP1Socket(port: h.port)
        try partial.send("POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Le")
        let partialBody = try HTTP1Socket(port: h.port)
        try partialBody.send("POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"k")
        let started = Date()
        XCTAssertEqual(partial.readUntilClosed(within: 5), "", "a partial request head was held open")
        XCTAssertEqual(partialBody.readUntilClosed(within: 5), "", "a partial request body was held open")
        XCTAssertLessThan(Date().timeIntervalSince(started), 5)
        try await h.stop()
    }

    func testIdleConnectionIsClosedAfterItsLastResponse() async throws {
        let h = try await Self.start(timeout: .milliseconds(400))
        let socket = try HTTP1Socket(port: h.port)
        try socket.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        let answer = socket.readUntilClosed(within: 5)
        XCTAssertTrue(answer?.hasPrefix("HTTP/1.1 200 OK\r\n") == true, "\(answer ?? "no answer")")
        XCTAssertTrue(answer?.hasSuffix("\r\n\r\n/a") == true, "\(answer ?? "no answer")")
        try await h.stop()
    }

    func testPipelinedRequestsAreAnsweredInOrder() async throws {
        let h = try await Self.start()
        let socket = try HTTP1Socket(port: h.port)
        try socket.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        let answers = socket.readUntilClosed(within: 5) ?? "no answer"
        let slow = answers.range(of: "\r\n\r\n/slow"), fast = answers.range(of: "\r\n\r\n/fast")
        XCTAssertNotNil(slow, answers)
        XCTAssertNotNil(fast, answers)
        if let slow, let fast { XCTAssertLessThan(slow.lowerBound, fast.lowerBound, answers) }
        try await h.stop()
    }

    func testUnparsableRequestGets400AndIsClosed() async throws {
        let h = try await Self.start()
        let socket = try HTTP1Socket(port: h.port)
        try socket.send("GET / HTTP/1.1\r\nHost x\r\n\r\n")
        let answer = socket.readUntilClosed(within: 5)
        XCTAssertTrue(answer?.hasPrefix("HTTP/1.1 400 Bad Request\r\n") == true, "\(answer ?? "not closed")")
        try await h.stop()
    }
}

/// A blocking loopback TCP socket speaking text.
final class HTTP1Socket {
    private let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            close(fd)
            throw POSIXError(.ECONNREFUSED)
        }
    }

    deinit { close(fd) }

    func send(_ text: String) throws {
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard n == bytes.count else { throw POSIXError(.EPIPE) }
    }

    /// Everything received until the peer closed; nil if it did not close within `seconds`.
    func readUntilClosed(within seconds: Double) -> String? {
        let end = Date().addingTimeInterval(seconds)
        var received: [UInt8] = []
        while true {
            let left = end.timeIntervalSinceNow
            guard left > 0 else { return nil }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, Int32(left * 1000) + 1) == 1 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return String(decoding: received, as: UTF8.self) }
            received += buffer[..<n]
        }
    }
}
