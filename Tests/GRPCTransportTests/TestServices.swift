import Dispatch
import GRPCTransport
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SwiftProtobuf

typealias StringValue = Google_Protobuf_StringValue
typealias BytesValue = Google_Protobuf_BytesValue
typealias UInt32Value = Google_Protobuf_UInt32Value

/// Records what handlers observed, for assertions.
final class Observations: Sendable {
    let cancelledStreams = NIOLockedValueBox(0)
    let handlerThreadsOnLoop = NIOLockedValueBox<[Bool]>([])
}

/// `test.Echo`: methods built from well-known protobuf types.
func makeTestService(_ observations: Observations) -> Service {
    Service(name: "test.Echo", methods: [
        // Echoes the value; "meta:NAME" answers metadata[NAME]; "fail:CODE:MESSAGE" fails;
        // "deadline" answers the milliseconds left until the deadline.
        .unary("Unary") { (request: StringValue, context, responder: UnaryResponder<StringValue>) in
            observations.handlerThreadsOnLoop.withLockedValue { $0.append(context.eventLoop.inEventLoop) }
            let value = request.value
            if value.hasPrefix("meta:") {
                responder.succeed(StringValue(context.metadata[String(value.dropFirst(5))] ?? "<none>"))
            } else if value.hasPrefix("fail:") {
                let parts = value.split(separator: ":", maxSplits: 2).map(String.init)
                responder.fail(GRPCStatus(.init(rawValue: Int(parts[1])!), parts[2]))
            } else if value == "deadline" {
                let ms = context.deadline.map { ($0 - .now()).nanoseconds / 1_000_000 } ?? -1
                responder.succeed(StringValue(String(ms)))
            } else {
                responder.succeed(StringValue(value))
            }
        },
        // Answers from another thread after the given milliseconds.
        .unary("Delayed") { (request: UInt32Value, _, responder: UnaryResponder<UInt32Value>) in
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(request.value))) {
                responder.succeed(request)
            }
        },
        // Streams request.value messages 0..<n; never finishes when n == 0 (waits for cancel).
        .serverStreaming("Count") { (request: UInt32Value, stream: ServerStream<UInt32Value>) in
            stream.setOnCancel { observations.cancelledStreams.withLockedValue { $0 += 1 } }
            guard request.value > 0 else { return }
            for i in 0..<request.value { stream.send(UInt32Value(i)) }
            stream.finish()
        },
        // Echoes each message upper-cased; finishes when the client half-closes.
        .bidirectionalStreaming("Upper") { (stream: ServerStream<StringValue>) in
            BidiInbound(onMessage: { (message: StringValue) in
                stream.send(StringValue(message.value.uppercased()))
            }, onEnd: { stream.finish() })
        },
    ])
}

/// An in-process server on a random loopback port plus a client connected to it.
struct Harness {
    let group: MultiThreadedEventLoopGroup
    let server: GRPCServer
    let client: GRPCClient
    let port: Int
    let observations: Observations

    static func start(_ configure: (inout GRPCServerConfiguration) -> Void = { _ in }) async throws -> Harness {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        var configuration = GRPCServerConfiguration()
        configure(&configuration)
        let observations = Observations()
        let server = GRPCServer(services: [makeTestService(observations), HealthService().service],
                                configuration: configuration, group: group)
        let address = try await server.bind("http://127.0.0.1:0").get()
        let port = address.port!
        let client = try await GRPCClient.connect(host: "127.0.0.1", port: port, group: group).get()
        return Harness(group: group, server: server, client: client, port: port, observations: observations)
    }

    func stop() async throws {
        try? await client.close().get()
        try await server.shutdown(gracePeriod: .seconds(1)).get()
        try await group.shutdownGracefully()
    }
}

extension StringValue {
    init(_ value: String) {
        self.init()
        self.value = value
    }
}

extension UInt32Value {
    init(_ value: UInt32) {
        self.init()
        self.value = value
    }
}
