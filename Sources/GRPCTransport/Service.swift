import NIOCore
import SwiftProtobuf

/// A gRPC service: its full name (`package.Service`) and its methods.
public struct Service: Sendable {
    public let name: String
    let methods: [String: ServiceMethod]

    public init(name: String, methods: [ServiceMethod]) {
        self.name = name
        var table: [String: ServiceMethod] = [:]
        for method in methods { table[method.name] = method }
        self.methods = table
    }

    /// This service with every unary and server-streaming method's handler started only once
    /// `gate` calls its continuation: at once (on the event loop, without a hop) or later from
    /// any thread (the handler then runs on the call's event loop). `gate` runs on the call's
    /// event loop with the call's context and must call the continuation exactly once.
    /// Bidirectional-streaming methods are not gated.
    public func gated(by gate: @escaping @Sendable (CallContext, @escaping @Sendable () -> Void) -> Void) -> Service {
        Service(name: name, methods: methods.values.map { m in
            guard case .unary(let handle) = m.handler else { return m }
            var gated = ServiceMethod(name: m.name, kind: m.kind, handler: .unary { bytes, call in
                let loop = call.context.eventLoop
                gate(call.context) {
                    if loop.inEventLoop { return handle(bytes, call) }
                    loop.execute { if !call.hasEnded { handle(bytes, call) } }
                }
            })
            gated.monitor = m.monitor
            return gated
        })
    }

    /// This service with each method's monitor from `monitor` (see `GRPCCallMonitor`).
    func monitored(by monitor: any GRPCCallMonitor) -> Service {
        Service(name: name, methods: methods.values.map { m in
            var m = m
            m.monitor = monitor.monitor(service: name, method: m.name, kind: m.kind)
            return m
        })
    }
}

/// One method of a `Service`. Handlers run on the call's event loop.
public struct ServiceMethod: Sendable {
    let name: String
    let kind: GRPCMethodKind
    let handler: MethodHandler
    var monitor: (any GRPCMethodMonitor)?

    init(name: String, kind: GRPCMethodKind, handler: MethodHandler) {
        self.name = name
        self.kind = kind
        self.handler = handler
    }

    /// A unary method. The handler must complete `responder` exactly once, now or later, from
    /// any thread. Requests that fail to decode end with INTERNAL
    /// ("grpc: error unmarshalling request: ...") without reaching the handler.
    public static func unary<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ name: String, request: Request.Type = Request.self, response: Response.Type = Response.self,
        _ handler: @escaping @Sendable (Request, CallContext, UnaryResponder<Response>) -> Void
    ) -> ServiceMethod {
        ServiceMethod(name: name, kind: .unary, handler: .unary { bytes, call in
            let request: Request
            do {
                request = try decode(Request.self, bytes)
            } catch {
                call.finish(error as? GRPCStatus ?? GRPCStatus(.internalError, "\(error)"))
                return
            }
            call.noteReceived(messageBytes: bytes.readableBytes)
            call.noteStarted()
            handler(request, call.context, UnaryResponder(call: call))
        })
    }

    /// A server-streaming method: one request, any number of responses sent on the stream,
    /// then `finish`. The handler may return before the stream finishes.
    public static func serverStreaming<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ name: String, request: Request.Type = Request.self, response: Response.Type = Response.self,
        _ handler: @escaping @Sendable (Request, ServerStream<Response>) -> Void
    ) -> ServiceMethod {
        ServiceMethod(name: name, kind: .serverStream, handler: .unary { bytes, call in
            let request: Request
            do {
                request = try decode(Request.self, bytes)
            } catch {
                call.finish(error as? GRPCStatus ?? GRPCStatus(.internalError, "\(error)"))
                return
            }
            call.noteReceived(messageBytes: bytes.readableBytes)
            call.noteStarted()
            handler(request, ServerStream(call: call, context: call.context))
        })
    }

    /// A bidirectional-streaming method. The handler receives the response stream and returns
    /// the callbacks for the request stream. A request that fails to decode ends the call with
    /// INTERNAL.
    public static func bidirectionalStreaming<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ name: String, request: Request.Type = Request.self, response: Response.Type = Response.self,
        _ handler: @escaping @Sendable (ServerStream<Response>) -> BidiInbound<Request>
    ) -> ServiceMethod {
        ServiceMethod(name: name, kind: .bidiStream, handler: .bidirectional { call in
            call.noteStarted()
            let stream = ServerStream<Response>(call: call, context: call.context)
            let inbound = handler(stream)
            return InboundCallbacks(
                onMessage: { bytes in
                    do {
                        let request = try decode(Request.self, bytes)
                        call.noteReceived(messageBytes: bytes.readableBytes)
                        inbound.onMessage(request)
                    } catch {
                        stream.finish(error as? GRPCStatus ?? GRPCStatus(.internalError, "\(error)"))
                    }
                },
                onEnd: inbound.onEnd)
        })
    }
}

func decode<M: SwiftProtobuf.Message>(_ type: M.Type, _ bytes: ByteBuffer) throws -> M {
    do {
        return try M(serializedBytes: FramedMessage(received: bytes))
    } catch {
        throw GRPCStatus(.internalError, "grpc: error unmarshalling request: \(error)")
    }
}

/// Type-erased method implementations, operating on message bytes.
enum MethodHandler: Sendable {
    /// Unary and server-streaming: dispatched with the single request message.
    case unary(@Sendable (ByteBuffer, any CallSink) -> Void)
    case bidirectional(@Sendable (any CallSink) -> InboundCallbacks)
}

struct InboundCallbacks {
    var onMessage: (ByteBuffer) -> Void
    var onEnd: () -> Void
}
