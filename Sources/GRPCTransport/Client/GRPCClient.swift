import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SwiftProtobuf

/// A gRPC client over one HTTP/2 connection (libnghttp2 client session on a NIO channel).
/// Any number of calls run multiplexed on the connection; for more parallelism open more
/// clients. All methods are thread-safe; callbacks run on the connection's event loop.
///
/// ```
/// let client = try await GRPCClient.connect(host: "127.0.0.1", port: 2379, group: group).get()
/// let reply: RangeResponse = try await client.unary("/etcdserverpb.KV/Range", request).get()
/// ```
public final class GRPCClient: Sendable {
    public let eventLoop: any EventLoop
    private let channel: any Channel
    private let handler: NIOLoopBound<ClientConnectionHandler>

    /// Largest response message accepted (default 2 GiB - 1, effectively unlimited).
    public let maxReceiveMessageSize: Int

    private init(channel: any Channel, handler: ClientConnectionHandler, maxReceiveMessageSize: Int) {
        self.channel = channel
        self.eventLoop = channel.eventLoop
        self.handler = NIOLoopBound(handler, eventLoop: channel.eventLoop)
        self.maxReceiveMessageSize = maxReceiveMessageSize
    }

    /// Connects to `host:port` over h2c (prior knowledge), or TLS with ALPN `h2` when `tls` is
    /// given (its `applicationProtocols` are set to `["h2"]`).
    public static func connect(host: String, port: Int, group: any EventLoopGroup,
                               tls: TLSConfiguration? = nil, serverHostname: String? = nil,
                               maxReceiveMessageSize: Int = Int(Int32.max)) -> EventLoopFuture<GRPCClient> {
        let loop = group.next()
        var sslContext: NIOSSLContext?
        if var tls {
            tls.applicationProtocols = ["h2"]
            do {
                sslContext = try NIOSSLContext(configuration: tls)
            } catch {
                return loop.makeFailedFuture(error)
            }
        }
        let context = sslContext
        let authority = "\(host):\(port)"
        let scheme = context == nil ? "http" : "https"
        return ClientBootstrap(group: loop)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .channelInitializer { channel in
                do {
                    if let context {
                        // SNI carries names only: an IP literal is verified against the
                        // certificate's IP SANs instead.
                        let name = serverHostname ?? host
                        let isIPLiteral = (try? SocketAddress(ipAddress: name, port: 0)) != nil
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: context, serverHostname: isIPLiteral ? nil : name))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ClientConnectionHandler(authority: authority, scheme: scheme))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .connect(host: host, port: port)
            .flatMapThrowing { channel in
                let handler = try channel.pipeline.syncOperations.handler(type: ClientConnectionHandler.self)
                return GRPCClient(channel: channel, handler: handler, maxReceiveMessageSize: maxReceiveMessageSize)
            }
    }

    /// Closes the connection (calls in flight end with UNAVAILABLE).
    public func close() -> EventLoopFuture<Void> {
        channel.close()
    }

    private func onLoop(_ body: @escaping @Sendable (ClientConnectionHandler) -> Void) {
        let handler = self.handler
        if eventLoop.inEventLoop {
            body(handler.value)
        } else {
            eventLoop.execute { body(handler.value) }
        }
    }

    private func makeCall(path: String, metadata: [(String, String)], timeout: TimeAmount?,
                          onMessage: @escaping (ByteBuffer) -> Void,
                          onClose: @escaping (GRPCStatus) -> Void) -> ClientCall {
        let call = ClientCall(path: path, metadata: metadata, timeout: timeout, onMessage: onMessage, onClose: onClose)
        call.maxMessageSize = maxReceiveMessageSize
        return call
    }

    /// A unary call. The future fails with a `GRPCStatus` unless the status is OK and exactly
    /// one response arrived.
    public func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ path: String, _ request: Request, metadata: [(String, String)] = [], timeout: TimeAmount? = nil,
        responseType: Response.Type = Response.self
    ) -> EventLoopFuture<Response> {
        let promise = eventLoop.makePromise(of: Response.self)
        unary(path, request, metadata: metadata, timeout: timeout, responseType: Response.self) { result in
            switch result {
            case .success(let response): promise.succeed(response)
            case .failure(let status): promise.fail(status)
            }
        }
        return promise.futureResult
    }

    /// A unary call whose `completion` runs once, on the connection's event loop, with the
    /// response (status OK and exactly one message) or the failing status. Called on the event
    /// loop, the call starts at once, without a thread hop or a future: a completion may start
    /// the next call directly (closed-loop load generators do).
    public func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ path: String, _ request: Request, metadata: [(String, String)] = [], timeout: TimeAmount? = nil,
        responseType: Response.Type = Response.self,
        completion: @escaping @Sendable (Result<Response, GRPCStatus>) -> Void
    ) {
        let framed: ByteBuffer
        do {
            framed = try request.grpcFramed()
        } catch {
            let status = GRPCStatus(.internalError, "grpc: error while marshaling: \(error)")
            onLoop { _ in completion(.failure(status)) }
            return
        }
        onLoop { handler in
            var response: Response?
            var decodeError: GRPCStatus?
            let call = self.makeCall(path: path, metadata: metadata, timeout: timeout, onMessage: { bytes in
                do {
                    response = try Response(serializedBytes: FramedMessage(received: bytes))
                } catch {
                    decodeError = GRPCStatus(.internalError, "grpc: failed to unmarshal the received message: \(error)")
                }
            }, onClose: { status in
                if let decodeError {
                    completion(.failure(decodeError))
                } else if status.code != .ok {
                    completion(.failure(status))
                } else if let response {
                    completion(.success(response))
                } else {
                    completion(.failure(GRPCStatus(.internalError, "grpc: server returned OK without a response message")))
                }
            })
            call.append(framed)
            call.inputFinished = true
            handler.start(call)
        }
    }

    /// A server-streaming call: `onResponse` runs on the event loop for each response; the
    /// future completes with the final status (it does not fail; check `code`).
    public func serverStreaming<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ path: String, _ request: Request, metadata: [(String, String)] = [], timeout: TimeAmount? = nil,
        responseType: Response.Type = Response.self, onResponse: @escaping @Sendable (Response) -> Void
    ) -> EventLoopFuture<GRPCStatus> {
        let call = bidirectionalStreaming(path, metadata: metadata, timeout: timeout,
                                          requestType: Request.self, responseType: Response.self,
                                          onResponse: onResponse)
        call.send(request)
        call.closeSend()
        return call.status
    }

    /// Starts a bidirectional-streaming call.
    public func bidirectionalStreaming<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ path: String, metadata: [(String, String)] = [], timeout: TimeAmount? = nil,
        requestType: Request.Type = Request.self, responseType: Response.Type = Response.self,
        onResponse: @escaping @Sendable (Response) -> Void
    ) -> ClientStreamingCall<Request> {
        let promise = eventLoop.makePromise(of: GRPCStatus.self)
        let box = NIOLoopBoundBox.makeEmptyBox(valueType: ClientCall.self, eventLoop: eventLoop)
        let streaming = ClientStreamingCall<Request>(eventLoop: eventLoop, status: promise.futureResult, call: box, client: self)
        let direct = Response.self as? any GRPCDirectDecodable.Type
        onLoop { handler in
            var failure: GRPCStatus?
            var cancelSelf: (() -> Void)?
            let call = self.makeCall(path: path, metadata: metadata, timeout: timeout, onMessage: { bytes in
                guard failure == nil else { return }
                do {
                    if let direct, let response = try direct.init(grpcPayload: bytes) as? Response {
                        onResponse(response)
                    } else {
                        onResponse(try Response(serializedBytes: FramedMessage(received: bytes)))
                    }
                } catch {
                    failure = GRPCStatus(.internalError, "grpc: failed to unmarshal the received message: \(error)")
                    cancelSelf?()
                }
            }, onClose: { status in
                promise.succeed(failure ?? status)
            })
            cancelSelf = { [unowned call] in handler.reset(call, errorCode: H2.cancel) }
            box.value = call
            handler.start(call)
        }
        return streaming
    }

    fileprivate func withCall(_ box: NIOLoopBoundBox<ClientCall?>,
                              _ body: @escaping @Sendable (ClientConnectionHandler, ClientCall) -> Void) {
        onLoop { handler in
            if let call = box.value { body(handler, call) }
        }
    }
}

/// The client side of a streaming call. Thread-safe.
public final class ClientStreamingCall<Request: SwiftProtobuf.Message>: Sendable {
    public let eventLoop: any EventLoop
    /// The call's final status (never fails).
    public let status: EventLoopFuture<GRPCStatus>
    private let call: NIOLoopBoundBox<ClientCall?>
    private let client: GRPCClient

    fileprivate init(eventLoop: any EventLoop, status: EventLoopFuture<GRPCStatus>,
                     call: NIOLoopBoundBox<ClientCall?>, client: GRPCClient) {
        self.eventLoop = eventLoop
        self.status = status
        self.call = call
        self.client = client
    }

    /// Sends a request message.
    public func send(_ message: Request) {
        guard let framed = try? message.grpcFramed() else { return }
        client.withCall(call) { handler, call in handler.send(call, framed, end: false) }
    }

    /// Half-closes the request side.
    public func closeSend() {
        client.withCall(call) { handler, call in handler.send(call, nil, end: true) }
    }

    /// Resets the stream (RST_STREAM CANCEL); the status becomes CANCELLED.
    public func cancel() {
        client.withCall(call) { handler, call in
            call.localFailure = GRPCStatus(.cancelled, "context canceled")
            handler.reset(call, errorCode: H2.cancel)
        }
    }
}
