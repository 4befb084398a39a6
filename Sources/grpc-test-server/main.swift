// grpc-test-server: serves rusd.transporttest.Echo and grpc.health.v1.Health for the
// transport's compatibility tests and benchmarks.
//
//   grpc-test-server [--listen URL]... [--max-recv-bytes N] [--max-concurrent-streams N]
//                    [--keepalive-min-time-ms N] [--keepalive-interval-ms N]
//                    [--keepalive-timeout-ms N] [--threads N]
//                    [--cert FILE --key FILE [--trusted-ca FILE] [--client-cert-auth]]
//
// Prints "listening <url> <port>" per listener, then serves until SIGTERM/SIGINT, which
// shuts down gracefully.
import GRPCTransport
import NIOCore
import NIOPosix
#if canImport(Glibc)
import Glibc
#endif

var listens: [String] = []
var configuration = GRPCServerConfiguration()
var threads = 1
var cert: String?
var key: String?
var trustedCA: String?
var clientCertAuth = false

let arguments = Array(CommandLine.arguments.dropFirst())
var index = 0
@MainActor func value(_ flag: String) -> String {
    index += 1
    guard index < arguments.count else {
        Diagnostics.error("missing value for \(flag)")
        exit(2)
    }
    return arguments[index]
}
while index < arguments.count {
    let arg = arguments[index]
    switch arg {
    case "--listen": listens.append(value(arg))
    case "--max-recv-bytes": configuration.maxReceiveMessageSize = Int(value(arg))!
    case "--max-concurrent-streams": configuration.maxConcurrentStreams = UInt32(value(arg))!
    case "--keepalive-min-time-ms": configuration.keepalive.minClientPingInterval = .milliseconds(Int64(value(arg))!)
    case "--keepalive-interval-ms": configuration.keepalive.interval = .milliseconds(Int64(value(arg))!)
    case "--keepalive-timeout-ms": configuration.keepalive.timeout = .milliseconds(Int64(value(arg))!)
    case "--permit-without-stream": configuration.keepalive.permitWithoutStream = true
    case "--threads": threads = Int(value(arg))!
    case "--cert": cert = value(arg)
    case "--key": key = value(arg)
    case "--trusted-ca": trustedCA = value(arg)
    case "--client-cert-auth": clientCertAuth = true
    default:
        Diagnostics.error("unknown argument \(arg)")
        exit(2)
    }
    index += 1
}
if listens.isEmpty { listens = ["http://127.0.0.1:0"] }
if let cert, let key {
    configuration.tls = GRPCServerTLS(certificateChainFile: cert, privateKeyFile: key,
                                      trustedCAFile: trustedCA, requireClientCertificate: clientCertAuth)
}
configuration.http1Handler = { request, loop in
    switch request.path {
    case "/health":
        return loop.makeSucceededFuture(HTTP1Response(status: 200, contentType: "application/json",
                                                      body: "{\"health\":\"true\",\"reason\":\"\"}"))
    case "/version":
        return loop.makeSucceededFuture(HTTP1Response(status: 200, contentType: "application/json",
                                                      body: "{\"server\":\"grpc-test-server\"}"))
    default:
        return loop.makeSucceededFuture(HTTP1Response(status: 404, body: "404 page not found\n"))
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let health = HealthService()
let server = GRPCServer(services: [makeEchoService(), health.service], configuration: configuration, group: group)
for url in listens {
    do {
        let address = try server.bind(url).wait()
        writeLine(STDOUT_FILENO, "listening \(url) \(address.port ?? 0)")
    } catch {
        Diagnostics.error("cannot listen on \(url): \(error)")
        exit(1)
    }
}

waitForTermination {
    health.setStatus(.notServing)
    try? server.shutdown(gracePeriod: .seconds(5)).wait()
}
try? group.syncShutdownGracefully()

enum Diagnostics {
    static func error(_ message: String) {
        writeLine(STDERR_FILENO, "grpc-test-server: \(message)")
    }
}

/// Writes `text` and a newline to `fd` unbuffered (the tests read stdout line by line).
func writeLine(_ fd: Int32, _ text: String) {
    var line = text + "\n"
    line.withUTF8 { bytes in
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n <= 0 { return }
            offset += n
        }
    }
}
