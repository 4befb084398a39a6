import NIOCore
import Synchronization

extension Service {
    /// Starts a call of this service's `method` in process, without HTTP/2: the request and
    /// response messages go in and out as serialized protobuf (no gRPC framing), and the
    /// method's handler runs exactly as for a call received on a connection (same decoding, same
    /// handler, same `UnaryResponder` / `ServerStream` contracts). For bridges such as an
    /// HTTP/JSON gateway. Returns nil when the service has no method `method`.
    ///
    /// `onMessage` gets each response message with a `written` callback to call (from any
    /// thread) once the message has left, which drives the stream's backpressure
    /// (`ServerStream.isWritable`); `onEnd` runs once, with the call's final status. Both run on
    /// `context.eventLoop`. Call `send`, `end` and `cancel` of the returned call from any thread.
    public func startLocalCall(_ method: String, context: CallContext,
                               highWatermark: Int = 64 << 10, lowWatermark: Int = 16 << 10,
                               onMessage: @escaping @Sendable (ByteBuffer, _ written: @escaping @Sendable () -> Void) -> Void,
                               onEnd: @escaping @Sendable (GRPCStatus) -> Void) -> LocalCall? {
        guard let m = methods[method] else { return nil }
        let call = LocalCall(context: context, handler: m.handler, highWatermark: highWatermark,
                             lowWatermark: lowWatermark, onMessage: onMessage, onEnd: onEnd)
        call.onLoop { call.start() }
        return call
    }

    /// The kind of `method`, nil when the service has no such method.
    public func kind(of method: String) -> GRPCMethodKind? { methods[method]?.kind }
}

/// A call started by `Service.startLocalCall`.
///
/// Invariant: the mutable state is touched on `context.eventLoop` only (entry points hop
/// there), which makes the `@unchecked Sendable` sound; `ended` mirrors `finished` for other
/// threads.
public final class LocalCall: CallSink, @unchecked Sendable {
    let context: CallContext!
    let highWatermark: Int
    let lowWatermark: Int
    var observer: CallObserver?
    private let handler: MethodHandler
    private let onMessage: @Sendable (ByteBuffer, @escaping @Sendable () -> Void) -> Void
    private let onEnd: @Sendable (GRPCStatus) -> Void
    private var inbound: InboundCallbacks?
    private var requestReceived = false
    private var finished = false
    private let ended = Atomic<Bool>(false)

    init(context: CallContext, handler: MethodHandler, highWatermark: Int, lowWatermark: Int,
         onMessage: @escaping @Sendable (ByteBuffer, @escaping @Sendable () -> Void) -> Void,
         onEnd: @escaping @Sendable (GRPCStatus) -> Void) {
        self.context = context
        self.handler = handler
        self.highWatermark = highWatermark
        self.lowWatermark = lowWatermark
        self.onMessage = onMessage
        self.onEnd = onEnd
    }

    // MARK: The caller's side (any thread)

    /// Delivers one request message (serialized, unframed). A unary method takes exactly one.
    public func send(_ request: ByteBuffer) {
        onLoop { [self] in
            guard !finished else { return }
            switch handler {
            case .unary(let handle):
                if requestReceived {
                    endOnLoop(GRPCStatus(.internalError, "grpc: received more than one request message for a unary call"))
                    return
                }
                requestReceived = true
                handle(request, self)
            case .bidirectional:
                inbound?.onMessage(request)
            }
        }
    }

    /// The caller sends no more requests (half-close).
    public func end() {
        onLoop { [self] in
            guard !finished else { return }
            switch handler {
            case .unary:
                if !requestReceived {
                    endOnLoop(GRPCStatus(.internalError, "grpc: request stream ended without a request message"))
                }
            case .bidirectional:
                inbound?.onEnd()
            }
        }
    }

    /// The caller went away: the handler sees cancellation (`ServerStream.setOnCancel`) and
    /// `onEnd` is not called.
    public func cancel() {
        onLoop { [self] in
            guard !finished else { return }
            finished = true
            ended.store(true, ordering: .relaxed)
            inbound = nil
            let observer = self.observer
            self.observer = nil
            observer?.cancelled()
        }
    }

    // MARK: CallSink (the handler's side)

    var hasEnded: Bool { ended.load(ordering: .relaxed) }

    func respond(message: ByteBuffer) {
        onLoop { [self] in
            guard !finished else { return }
            deliver(message)
            endOnLoop(.ok)
        }
    }

    func enqueue(message: ByteBuffer) {
        onLoop { [self] in
            guard !finished else { return }
            deliver(message)
        }
    }

    func enqueue(message: ByteBuffer, tail: [ByteBuffer]) {
        // The bridge takes each message whole: joined here (a copy, off the HTTP/2 path).
        var joined = message
        for var part in tail { joined.writeBuffer(&part) }
        enqueue(message: joined)
    }

    func finish(_ status: GRPCStatus) {
        onLoop { [self] in endOnLoop(status) }
    }

    func noteStarted() {}

    // MARK: On the event loop

    func start() {
        if case .bidirectional(let start) = handler { inbound = start(self) }
    }

    private func deliver(_ framed: ByteBuffer) {
        var message = framed
        message.moveReaderIndex(forwardBy: min(5, message.readableBytes))  // the gRPC message header
        let size = framed.readableBytes
        let loop = context.eventLoop
        onMessage(message) { [self] in
            onLoop(on: loop) {
                if let callback = self.observer?.drained(bytes: size) { callback() }
            }
        }
    }

    private func endOnLoop(_ status: GRPCStatus) {
        guard !finished else { return }
        finished = true
        ended.store(true, ordering: .relaxed)
        inbound = nil
        observer = nil
        onEnd(status)
    }

    func onLoop(_ body: @escaping @Sendable () -> Void) {
        onLoop(on: context.eventLoop, body)
    }

    private func onLoop(on loop: any EventLoop, _ body: @escaping @Sendable () -> Void) {
        if loop.inEventLoop { body() } else { loop.execute(body) }
    }
}
