import Foundation
@testable import GRPCTransport
import NIOCore
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `GRPCServerConfiguration.Limits`, exercised with small limits. Attacks at full size, against
/// rusd and a real etcd, are in Tests/compat/test_abuse.py.
final class ConnectionLimitsTests: XCTestCase {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    func testSlowHandshakeIsDisconnected() async throws {
        let h = try await Harness.start { $0.limits.handshakeTimeout = .milliseconds(300) }
        let halfPreface = try RawSocket(port: h.port)
        try halfPreface.send(Array(Self.preface.prefix(10)))
        let noSettings = try RawSocket(port: h.port)
        try noSettings.send(Self.preface)
        XCTAssertTrue(halfPreface.closedByPeer(within: 3), "half a preface held open past the timeout")
        XCTAssertTrue(noSettings.closedByPeer(within: 3), "a preface without SETTINGS held open past the timeout")
        // The harness's client completed its handshake long ago and is still served.
        let reply: StringValue = try await h.client.unary("/test.Echo/Unary", StringValue("still here")).get()
        XCTAssertEqual(reply.value, "still here")
        try await h.stop()
    }

    func testHeaderListOverTheLimitIsRefusedAndTheConnectionSurvives() async throws {
        let h = try await Harness.start { $0.limits.maxHeaderListSize = 4096 }
        let fits: StringValue = try await h.client.unary(
            "/test.Echo/Unary", StringValue("meta:token"), metadata: [("token", String(repeating: "t", count: 3000))]).get()
        XCTAssertEqual(fits.value.count, 3000)
        do {
            let _: StringValue = try await h.client.unary(
                "/test.Echo/Unary", StringValue("meta:token"), metadata: [("token", String(repeating: "t", count: 5000))]).get()
            XCTFail("a header list over the limit was served")
        } catch {}
        let reply: StringValue = try await h.client.unary("/test.Echo/Unary", StringValue("after")).get()
        XCTAssertEqual(reply.value, "after")
        try await h.stop()
    }

    func testFramesWithoutProgressGetEnhanceYourCalm() async throws {
        let h = try await Harness.start { $0.limits.maxFramesWithoutProgress = 50 }
        let socket = try RawSocket(port: h.port)
        var out = Self.preface + frame(type: 4, flags: 0, stream: 0, payload: [])
        for _ in 0..<60 { out += frame(type: 8, flags: 0, stream: 0, payload: [0, 0, 0, 1]) }  // WINDOW_UPDATE +1
        try socket.send(out)
        let goaway = socket.readGoaway(within: 3)
        XCTAssertEqual(goaway?.code, 11)  // ENHANCE_YOUR_CALM
        XCTAssertEqual(goaway?.debug, "too_many_frames_without_progress")
        XCTAssertTrue(socket.closedByPeer(within: 3))
        // Progress resets the count: 40 frames, a request, 40 more: no GOAWAY.
        let patient = try RawSocket(port: h.port)
        let windowUpdates = (0..<40).flatMap { _ in frame(type: 8, flags: 0, stream: 0, payload: [0, 0, 0, 1]) }
        let headers = literalHeaders([(":method", "POST"), (":scheme", "http"), (":path", "/test.Echo/Unary"),
                                      (":authority", "x"), ("content-type", "application/grpc"), ("te", "trailers")])
        let request = frame(type: 1, flags: 4, stream: 1, payload: headers)
            + frame(type: 0, flags: 1, stream: 1, payload: [0, 0, 0, 0, 4, 0x0A, 2, UInt8(ascii: "o"), UInt8(ascii: "k")])
        try patient.send(Self.preface + frame(type: 4, flags: 0, stream: 0, payload: []) + windowUpdates + request + windowUpdates)
        XCTAssertNil(patient.readGoaway(within: 1), "a peer making progress got GOAWAY")
        let reply: StringValue = try await h.client.unary("/test.Echo/Unary", StringValue("ok")).get()
        XCTAssertEqual(reply.value, "ok")
        try await h.stop()
    }

    /// HPACK literal header fields without indexing (names and values under 127 bytes).
    private func literalHeaders(_ fields: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        for (name, value) in fields {
            out.append(0)
            out.append(UInt8(name.utf8.count))
            out.append(contentsOf: name.utf8)
            out.append(UInt8(value.utf8.count))
            out.append(contentsOf: value.utf8)
        }
        return out
    }

    private func frame(type: UInt8, flags: UInt8, stream: UInt32, payload: [UInt8]) -> [UInt8] {
        let n = payload.count
        return [UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF), type, flags,
                UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)]
            + payload
    }
}

/// A blocking loopback TCP socket for sending hand-made bytes.
final class RawSocket {
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

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw POSIXError(.EPIPE) }
            sent += n
        }
    }

    /// Reads until `seconds` pass; nil on timeout, else the bytes (empty: the peer closed).
    private func read(within seconds: Double) -> [UInt8]? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, Int32(seconds * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n <= 0 ? [] : Array(buffer[..<n])
    }

    /// Whether the peer closed the connection within `seconds` (anything it sent is skipped).
    func closedByPeer(within seconds: Double) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            guard let bytes = read(within: end.timeIntervalSinceNow) else { return false }
            if bytes.isEmpty { return true }
        }
        return false
    }

    /// The first GOAWAY frame the peer sends within `seconds`: its error code and debug data.
    func readGoaway(within seconds: Double) -> (code: UInt32, debug: String)? {
        let end = Date().addingTimeInterval(seconds)
        var buffer: [UInt8] = []
        while Date() < end {
            guard let bytes = read(within: end.timeIntervalSinceNow), !bytes.isEmpty else { return nil }
            buffer += bytes
            while buffer.count >= 9 {
                let length = Int(buffer[0]) << 16 | Int(buffer[1]) << 8 | Int(buffer[2])
                guard buffer.count >= 9 + length else { break }
                let type = buffer[3]
                let payload = Array(buffer[9..<(9 + length)])
                buffer.removeFirst(9 + length)
                if type == 7 && payload.count >= 8 {
                    let code = payload[4..<8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                    return (code, String(decoding: payload[8...], as: UTF8.self))
                }
            }
        }
        return nil
    }
}
