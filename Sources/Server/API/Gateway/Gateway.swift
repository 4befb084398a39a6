import GRPCTransport
import NIOCore
import Synchronization

/// etcd's HTTP/JSON gateway (`POST /v3/...`, see `GatewayRoutes`) on the client port.
///
/// One code path per RPC: a request's JSON is decoded into the method's protobuf request and
/// the call runs through the same `Service` handler the gRPC transport dispatches to (a
/// `LocalCall`: same validation, auth and state machine), as etcd's gateway is a gRPC client
/// of its own server. The `Authorization` header carries the auth token.
///
/// Unary answers are the response as JSON, or `{"error","message","code"}` with
/// grpc-gateway's HTTP status for the code. Streaming methods (Watch, LeaseKeepAlive,
/// Snapshot) take the body's JSON values as their request messages, then half-close, and answer
/// with newline-delimited `{"result": ...}` objects as they come (HTTP/1.1 chunked); Watch stays
/// open until the client disconnects, as in etcd.
///
/// Metrics: with a `monitor` (the gRPC transport's, `GRPCServerMetrics`), every call that
/// reaches its service is counted as the gRPC calls of the same method are (started, messages
/// and their bytes, handled code and time), as etcd's gateway calls reach etcd's gRPC server.
/// Requests refused before that (unknown path, bad JSON) are not, as in etcd.
public struct Gateway: Sendable {
    private let services: [String: Service]
    private let monitor: (any GRPCCallMonitor)?

    public init(services: [Service], monitor: (any GRPCCallMonitor)? = nil) {
        var table: [String: Service] = [:]
        for service in services { table[service.name] = service }
        self.services = table
        self.monitor = monitor
    }

    /// The answer for a gateway path, nil for other paths. Call on `loop` (the connection's).
    public func respond(to request: HTTP1Request, on loop: any EventLoop) -> EventLoopFuture<HTTP1Response>? {
        let path = request.path
        guard path.hasPrefix("/v3/") || path.hasPrefix("/v3beta/") else { return nil }
        guard let route = GatewayRoutes.route(forPath: path),
              let service = services[route.service], let kind = service.kind(of: route.method) else {
            return loop.makeSucceededFuture(Self.plain(404, "Not Found\n"))
        }
        guard request.method == "POST" else {
            return loop.makeSucceededFuture(Self.plain(405, "Method Not Allowed\n"))
        }
        let context = CallContext(method: "/\(route.service)/\(route.method)", metadata: Self.metadata(request),
                                  deadline: nil, eventLoop: loop, peerCommonName: nil, remoteAddress: nil)
        let observer = monitor.flatMap { $0.monitor(service: route.service, method: route.method, kind: kind) }
        if kind == .unary {
            return unary(route, service, request.body, context, observer)
        }
        return streaming(route, service, request.body, context, observer)
    }

    /// Request metadata for the call: the token from `Authorization` (etcd reads both).
    private static func metadata(_ request: HTTP1Request) -> [String: String] {
        var metadata: [String: String] = [:]
        for (name, value) in request.headers where name == "authorization" {
            metadata["token"] = value
        }
        return metadata
    }

    private func unary(_ route: GatewayRoute, _ service: Service, _ body: [UInt8],
                       _ context: CallContext, _ observer: (any GRPCMethodMonitor)?) -> EventLoopFuture<HTTP1Response> {
        let loop = context.eventLoop
        let request: ByteBuffer
        do {
            request = try route.decodeRequest(body[...])
        } catch {
            return loop.makeSucceededFuture(Self.failure(GRPCStatus(.invalidArgument, Self.describe(error))))
        }
        let promise = loop.makePromise(of: HTTP1Response.self)
        let answer = Mutex<ByteBuffer?>(nil)
        let started = Self.noteStarted(observer, context, requests: [request])
        let call = service.startLocalCall(route.method, context: context, onMessage: { message, written in
            observer?.sent(messageBytes: message.readableBytes)
            answer.withLock { $0 = message }
            written()
        }, onEnd: { status in
            Self.noteHandled(observer, status, since: started)
            guard status.code == .ok, let message = answer.withLock({ $0 }) else {
                promise.succeed(Self.failure(status.code == .ok ? GRPCStatus(.internalError, "no response") : status))
                return
            }
            do {
                promise.succeed(Self.json(200, try route.encodeResponse(message)))
            } catch {
                promise.succeed(Self.failure(GRPCStatus(.internalError, Self.describe(error))))
            }
        })
        guard let call else { return loop.makeSucceededFuture(Self.plain(404, "Not Found\n")) }
        call.send(request)
        call.end()
        return promise.futureResult
    }

    /// Sends the body's JSON values, half-closes, and streams the responses. A first value
    /// that does not decode fails the request (HTTP 500, code UNKNOWN, as etcd's gateway);
    /// later ones end the requests sent.
    private func streaming(_ route: GatewayRoute, _ service: Service, _ body: [UInt8],
                           _ context: CallContext, _ observer: (any GRPCMethodMonitor)?) -> EventLoopFuture<HTTP1Response> {
        let loop = context.eventLoop
        var requests: [ByteBuffer] = []
        for value in GatewayJSON.values(body) {
            do {
                requests.append(try route.decodeRequest(value))
            } catch {
                if requests.isEmpty {
                    return loop.makeSucceededFuture(Self.failure(GRPCStatus(.unknown, Self.describe(error)), status: 500))
                }
                break
            }
        }
        let messages = requests
        var response = Self.json(200, [])
        response.bodyStream = HTTP1BodyStream { writer in
            let started = Self.noteStarted(observer, context, requests: messages)
            let call = service.startLocalCall(route.method, context: context, onMessage: { message, written in
                observer?.sent(messageBytes: message.readableBytes)
                guard let json = try? route.encodeResponse(message) else { return written() }
                var chunk = ByteBuffer()
                chunk.writeString("{\"result\":")
                chunk.writeBytes(json)
                chunk.writeString("}\n")
                writer.write(chunk, written: written)
            }, onEnd: { status in
                Self.noteHandled(observer, status, since: started)
                if status.code != .ok { writer.write(ByteBuffer(bytes: GatewayJSON.streamErrorChunk(status))) }
                writer.finish()
            })
            guard let call else { return writer.finish() }
            writer.setOnClose { call.cancel() }
            for message in messages { call.send(message) }
            call.end()
        }
        return loop.makeSucceededFuture(response)
    }

    // MARK: Metrics

    /// Counts a call's start and its request messages; returns its start time.
    private static func noteStarted(_ observer: (any GRPCMethodMonitor)?, _ context: CallContext,
                                    requests: [ByteBuffer]) -> NIODeadline {
        guard let observer else { return .now() }
        observer.started(metadata: context.metadata)
        for r in requests { observer.received(messageBytes: r.readableBytes) }
        return .now()
    }

    private static func noteHandled(_ observer: (any GRPCMethodMonitor)?, _ status: GRPCStatus, since start: NIODeadline) {
        guard let observer else { return }
        let elapsed = NIODeadline.now().uptimeNanoseconds &- start.uptimeNanoseconds
        observer.handled(status.code, seconds: Double(elapsed) / 1e9)
    }

    // MARK: Responses

    /// etcd's gateway adds these to every answer.
    private static let commonHeaders = [
        ("Access-Control-Allow-Headers", "accept, content-type, authorization"),
        ("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"),
        ("Access-Control-Allow-Origin", "*"),
    ]

    private static func json(_ status: Int, _ body: [UInt8]) -> HTTP1Response {
        HTTP1Response(status: status, contentType: "application/json", body: body, headers: commonHeaders)
    }

    private static func plain(_ status: Int, _ text: String) -> HTTP1Response {
        HTTP1Response(status: status, body: Array(text.utf8),
                      headers: commonHeaders + [("X-Content-Type-Options", "nosniff")])
    }

    private static func failure(_ status: GRPCStatus, status http: Int? = nil) -> HTTP1Response {
        json(http ?? GatewayJSON.httpStatus(status.code), GatewayJSON.errorBody(status))
    }

    private static func describe(_ error: any Error) -> String {
        (error as? GatewayJSON.DecodingError)?.message ?? "\(error)"
    }
}
