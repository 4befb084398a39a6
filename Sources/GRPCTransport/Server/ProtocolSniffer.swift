import NIOCore
import NIOHTTP1

/// The first handler of a plain or decrypted connection: reads until it can tell the HTTP/2
/// connection preface from an HTTP/1.x request, then installs the gRPC (HTTP/2) handler or
/// NIOHTTP1 with the HTTP/1.1 handler, and replays the bytes read so far. A client that has
/// not sent enough to decide within `handshakeTimeout` is disconnected (slowloris).
final class ProtocolSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private var buffered: ByteBuffer?
    private let makeHTTP2Handler: () -> ServerConnectionHandler
    private let http1Handler: HTTP1Handler?
    private let maxPlainBodySize: Int
    private let handshakeTimeout: TimeAmount
    private var timeout: Scheduled<Void>?

    init(makeHTTP2Handler: @escaping () -> ServerConnectionHandler, http1Handler: HTTP1Handler?,
         maxPlainBodySize: Int, handshakeTimeout: TimeAmount) {
        self.makeHTTP2Handler = makeHTTP2Handler
        self.http1Handler = http1Handler
        self.maxPlainBodySize = maxPlainBodySize
        self.handshakeTimeout = handshakeTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timeout = context.eventLoop.scheduleTask(in: handshakeTimeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timeout?.cancel()
        timeout = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is GracefulShutdownEvent {
            context.close(promise: nil)  // nothing started on this connection yet
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffered == nil {
            buffered = incoming
        } else {
            buffered!.writeBuffer(&incoming)
        }
        let bytes = buffered!.readableBytesView
        let prefix = min(bytes.count, Self.preface.count)
        let matches = bytes.prefix(prefix).elementsEqual(Self.preface.prefix(prefix))
        if matches && prefix < Self.preface.count { return }  // need more bytes
        let pipeline = context.pipeline.syncOperations
        do {
            if matches {
                try pipeline.addHandler(makeHTTP2Handler(), position: .after(self))
            } else {
                // NIO's HTTP/1.1 server pipeline: requests handed on one at a time, each after
                // the previous response ended (pipelined requests answered in order, reading
                // held meanwhile), and a request that does not parse answered 400 and closed.
                let handlers: [ChannelHandler] = [
                    HTTPResponseEncoder(), ByteToMessageHandler(HTTPRequestDecoder()),
                    HTTPServerPipelineHandler(), HTTPServerProtocolErrorHandler(),
                    HTTP1ServerHandler(handler: http1Handler, maxBodySize: maxPlainBodySize,
                                       requestTimeout: handshakeTimeout),
                ]
                try pipeline.addHandlers(handlers, position: .after(self))
            }
        } catch {
            context.close(promise: nil)
            return
        }
        let replay = buffered!
        buffered = nil
        context.fireChannelRead(wrapInboundOut(replay))
        context.fireChannelReadComplete()
        pipeline.removeHandler(context: context, promise: nil)
    }
}

/// Answers HTTP/1.1 requests with the configured `HTTP1Handler` (404 without one).
///
/// While it waits for a request (from the start, and after each response) the whole request
/// must arrive within `requestTimeout` (the handshake timeout, 120 s), else the connection is
/// closed: a client that sends part of a request and then nothing (slowloris), or keeps an
/// idle connection, does not hold it for ever. etcd's Go HTTP server sets no such timeout.
final class HTTP1ServerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let handler: HTTP1Handler?
    private var head: HTTPRequestHead?
    private var body: [UInt8] = []
    /// Largest request body served; a larger one is answered 413.
    private let maxBodySize: Int
    /// The request body went past `maxBodySize` (the rest was not kept).
    private var bodyTooLarge = false
    private var responding = false
    private var shuttingDown = false
    /// The body stream of the response being sent, if it has one (see `HTTP1BodyStream`).
    private var bodyWriter: HTTP1BodyWriter?

    private let requestTimeout: TimeAmount
    private var requestTimer: Scheduled<Void>?

    init(handler: HTTP1Handler?, maxBodySize: Int, requestTimeout: TimeAmount) {
        self.handler = handler
        self.maxBodySize = maxBodySize
        self.requestTimeout = requestTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        awaitRequest(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        requestTimer?.cancel()
        requestTimer = nil
    }

    /// Starts the time the next request has to arrive in.
    private func awaitRequest(context: ChannelHandlerContext) {
        requestTimer?.cancel()
        let channel = context.channel
        requestTimer = context.eventLoop.scheduleTask(in: requestTimeout) { channel.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        requestTimer?.cancel()
        requestTimer = nil
        bodyWriter?.connectionClosed()
        bodyWriter = nil
        context.fireChannelInactive()
    }

    /// A request that does not parse (answered 400 by `HTTPServerProtocolErrorHandler`), or a
    /// failed connection: nothing more can be read from it, so it is closed, as Go's server does.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is GracefulShutdownEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        // Finish the request in progress (answered with Connection: close), else close now.
        shuttingDown = true
        if head == nil && !responding { context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = []
            bodyTooLarge = false
        case .body(var chunk):
            if !bodyTooLarge, chunk.readableBytes <= maxBodySize - body.count, let bytes = chunk.readBytes(length: chunk.readableBytes) {
                body += bytes
            } else {
                bodyTooLarge = true  // answered 413, as over HTTP/2 (not served truncated)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            requestTimer?.cancel()
            requestTimer = nil
            if bodyTooLarge {
                body = []
                write(HTTP1Response(status: 413, body: "request body too large\n"), version: head.version,
                      keepAlive: head.isKeepAlive && !shuttingDown, context: context)
                return
            }
            let request = HTTP1Request(method: head.method.rawValue, uri: head.uri,
                                       headers: head.headers.map { ($0.name.lowercased(), $0.value) },
                                       body: body)
            let keepAlive = head.isKeepAlive
            let version = head.version
            responding = true
            let future = handler?(request, context.eventLoop)
                ?? context.eventLoop.makeSucceededFuture(HTTP1Response(status: 404, body: "404 page not found\n"))
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            future.hop(to: context.eventLoop).whenComplete { result in
                let (handler, context) = bound.value
                let response = (try? result.get())
                    ?? HTTP1Response(status: 500, body: "internal server error\n")
                handler.responding = false
                handler.write(response, version: version, keepAlive: keepAlive && !handler.shuttingDown,
                              context: context)
            }
        }
    }

    private func write(_ response: HTTP1Response, version: HTTPVersion, keepAlive: Bool,
                       context: ChannelHandlerContext) {
        if let stream = response.bodyStream {
            return writeStreaming(response, stream, version: version, keepAlive: keepAlive, context: context)
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.count))
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: response.status),
                                    headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: response.body.count)
        buffer.writeBytes(response.body)
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
        } else {
            awaitRequest(context: context)
        }
    }

    /// Writes the head (chunked: no Content-Length) and `response.body`, then hands the rest
    /// of the body to `stream`; the connection takes its next request once the stream finished.
    private func writeStreaming(_ response: HTTP1Response, _ stream: HTTP1BodyStream, version: HTTPVersion,
                                keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: response.status),
                                    headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if !response.body.isEmpty {
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
        }
        context.flush()
        responding = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let writer = HTTP1BodyWriter.http1(channel: context.channel) {
            let (handler, context) = bound.value
            handler.bodyWriter = nil
            handler.responding = false
            if !keepAlive || handler.shuttingDown {
                context.close(promise: nil)
            } else {
                handler.awaitRequest(context: context)
            }
        }
        bodyWriter = writer
        stream.start(writer)
    }
}
