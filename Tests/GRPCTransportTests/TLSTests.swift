import Foundation
import GRPCTransport
import NIOCore
import NIOPosix
import NIOSSL
import XCTest

/// TLS with ALPN h2 and client-certificate verification, our client against our server.
/// Certificates are made by `openssl` in a temp dir (skipped if openssl is missing).
final class TLSTests: XCTestCase {
    private var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("transport-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
                    "-days", "1", "-subj", "/CN=test-ca")
        for (name, ext) in [("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"), ("client", "")] {
            try openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(name).key", "-out", "\(name).csr",
                        "-subj", "/CN=\(name)-cn")
            var args = ["x509", "-req", "-in", "\(name).csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                        "-CAcreateserial", "-out", "\(name).crt", "-days", "1"]
            if !ext.isEmpty {
                try Data((ext + "\n").utf8).write(to: dir.appendingPathComponent("\(name).ext"))
                args += ["-extfile", "\(name).ext"]
            }
            try openssl(args)
        }
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: dir)
    }

    private func openssl(_ args: String...) throws { try openssl(args) }

    private func openssl(_ args: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl") else {
            throw XCTSkip("openssl not installed")
        }
        process.arguments = args
        process.currentDirectoryURL = dir
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "openssl \(args)")
    }

    private func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func testMutualTLSCarriesClientCommonName() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var configuration = GRPCServerConfiguration()
        configuration.tls = GRPCServerTLS(certificateChainFile: path("server.crt"), privateKeyFile: path("server.key"),
                                          trustedCAFile: path("ca.crt"), requireClientCertificate: true)
        let service = Service(name: "test.Peer", methods: [
            .unary("Name") { (_: StringValue, context, responder: UnaryResponder<StringValue>) in
                responder.succeed(StringValue(context.peerCommonName ?? "<none>"))
            },
        ])
        let server = GRPCServer(services: [service], configuration: configuration, group: group)
        let port = try await server.bind("https://127.0.0.1:0").get().port!

        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file(path("ca.crt"))
        tls.certificateChain = try NIOSSLCertificate.fromPEMFile(path("client.crt")).map { .certificate($0) }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: path("client.key"), format: .pem))
        let client = try await GRPCClient.connect(host: "127.0.0.1", port: port, group: group, tls: tls).get()
        let reply: StringValue = try await client.unary("/test.Peer/Name", StringValue("")).get()
        XCTAssertEqual(reply.value, "client-cn")
        try await client.close().get()

        // Without a client certificate the server refuses the handshake.
        var anonymous = TLSConfiguration.makeClientConfiguration()
        anonymous.trustRoots = .file(path("ca.crt"))
        do {
            let other = try await GRPCClient.connect(host: "127.0.0.1", port: port, group: group, tls: anonymous).get()
            let result = other.unary("/test.Peer/Name", StringValue(""), responseType: StringValue.self)
            _ = try await result.get()
            XCTFail("expected the call to fail")
        } catch {
            // connection refused during handshake or call failed: both are the expected outcome
        }
        try await server.shutdown(gracePeriod: .seconds(1)).get()
        try await group.shutdownGracefully()
    }
}
