import CNghttp2
import NIOCore
import Synchronization

/// Notified (on the event loop) of what happens to a streaming call's response side.
protocol CallObserver: AnyObject {
    /// HTTP/2 took `bytes` of queued response; returns a writability callback to run, if any.
    func drained(bytes: Int) -> (@Sendable () -> Void)?
    /// The stream closed before the call finished.
    func cancelled()
}

/// One HTTP/2 stream carrying a gRPC call on the server.
///
/// Invariant: all mutable state is touched on `eventLoop` only; the public entry points
/// (`respond`, `enqueue`, `finish`) hop there when called elsewhere. That is what makes the
/// `@unchecked Sendable` sound. The one exception is `ended`, an atomic mirror of `finished`
/// that lets completions arriving from other threads after the call ended (past its deadline,
/// reset by the client, connection gone, event loop shut down) skip the hop.
final class ServerCall: @unchecked Sendable {
    let streamID: Int32
    let eventLoop: any EventLoop
    let highWatermark: Int
    let lowWatermark: Int
    weak var connection: ServerConnectionHandler?

    // Request headers.
    var path = ""
    var httpMethod = ""
    /// A plain (non-gRPC) HTTP/2 request, served by the configured `HTTP1Handler`.
    var plainHTTP = false
    var plainResponse = false
    /// A plain response whose body is still being produced (`HTTP1Response.bodyStream`).
    var plainStreamOpen = false
    var plainBodyWriter: HTTP1BodyWriter?
    var plainBodyTooLarge = false
    var contentType = ""
    var encoding: String?
    var timeout: String?
    var metadata: [String: String] = [:]
    /// RFC 9113 size of the request header list so far (see `Limits.maxHeaderListSize`).
    var headerListSize = 0

    // Request side.
    var context: CallContext!
    var handler: MethodHandler?
    var inbound: InboundCallbacks?
    var deframer = MessageDeframer()
    var requestReceived = false
    var inputEnded = false
    var discardInput = false

    // Response side.
    var pending = PendingData()
    var headersSubmitted = false
    var finished = false {
        didSet { if finished { ended.store(true, ordering: .relaxed) } }
    }
    /// Set (once) when `finished` becomes true; readable from any thread.
    private let ended = Atomic<Bool>(false)
    var trailerStatus: GRPCStatus?
    var deferred = false
    var closed = false
    var observer: CallObserver?
    var drainedSinceNotify = 0
    /// Ends the call at its `grpc-timeout` deadline; nil without one, cancelled once the call ends.
    private var deadlineCallback: NIOScheduledCallback?

    // Monitoring (see `GRPCMethodMonitor`): `handled` follows `started` exactly once.
    var monitor: (any GRPCMethodMonitor)?
    private var monitorStarted = false
    private var monitorStartedAt = NIODeadline.uptimeNanoseconds(0)

    init(streamID: Int32, connection: ServerConnectionHandler, eventLoop: any EventLoop,
         highWatermark: Int, lowWatermark: Int) {
        self.streamID = streamID
        self.connection = connection
        self.eventLoop = eventLoop
        self.highWatermark = highWatermark
        self.lowWatermark = lowWatermark
    }

    // MARK: Entry points callable from any thread

    /// True once the call has ended (answered, failed, past its deadline, reset or closed);
    /// later completions are ignored. Callable from any thread.
    var hasEnded: Bool { ended.load(ordering: .relaxed) }

    func respond(message: ByteBuffer) {
        if eventLoop.inEventLoop {
            respondOnLoop(message)
        } else if !hasEnded {
            eventLoop.execute { self.respondOnLoop(message) }
        }
    }

    func enqueue(message: ByteBuffer) {
        if eventLoop.inEventLoop {
            enqueueOnLoop(message)
        } else if !hasEnded {
            eventLoop.execute { self.enqueueOnLoop(message) }
        }
    }

    func enqueue(message: ByteBuffer, tail: [ByteBuffer]) {
        if eventLoop.inEventLoop {
            enqueueOnLoop(message, tail: tail)
        } else if !hasEnded {
            eventLoop.execute { self.enqueueOnLoop(message, tail: tail) }
        }
    }

    func finish(_ status: GRPCStatus) {
        if eventLoop.inEventLoop {
            finishOnLoop(status)
        } else if !hasEnded {
            eventLoop.execute { self.finishOnLoop(status) }
        }
    }

    // MARK: On the event loop

    /// The handler is being invoked (on the event loop).
    func noteStarted() {
        guard let monitor, !monitorStarted else { return }
        monitorStarted = true
        monitorStartedAt = .now()
        monitor.started(metadata: context?.metadata ?? [:])
    }

    private func noteHandled(_ code: GRPCStatus.Code) {
        guard monitorStarted, let monitor else { return }
        self.monitor = nil
        let elapsed = NIODeadline.now().uptimeNanoseconds &- monitorStartedAt.uptimeNanoseconds
        monitor.handled(code, seconds: Double(elapsed) / 1e9)
    }

    private func respondOnLoop(_ message: ByteBuffer) {
        guard !finished, !closed else { return }
        cancelDeadline()
        append(message)
        finished = true
        trailerStatus = .ok
        noteHandled(.ok)
        submitResponse()
    }

    private func enqueueOnLoop(_ message: ByteBuffer) {
        guard !finished, !closed else { return }
        append(message)
        submitResponse()
    }

    private func enqueueOnLoop(_ message: ByteBuffer, tail: [ByteBuffer]) {
        guard !finished, !closed else { return }
        var bytes = message.readableBytes
        pending.append(message)
        for part in tail {
            pending.append(part)
            bytes += part.readableBytes
        }
        monitor?.sent(messageBytes: max(0, bytes - 5))  // without the gRPC prefix
        connection?.queuedResponseBytes += bytes
        submitResponse()
    }

    func finishOnLoop(_ status: GRPCStatus) {
        guard !finished, !closed else { return }
        cancelDeadline()
        finished = true
        noteHandled(status.code)
        guard let connection else { return }
        if !headersSubmitted {
            headersSubmitted = true
            connection.submitTrailersOnly(self, status: status)
        } else {
            trailerStatus = status
            submitResponse()
        }
    }

    private func append(_ message: ByteBuffer) {
        monitor?.sent(messageBytes: max(0, message.readableBytes - 5))  // without the gRPC prefix
        pending.append(message)
        connection?.queuedResponseBytes += message.readableBytes
    }

    /// Drops the response bytes not yet taken by HTTP/2 (and their share of the connection's
    /// queued total).
    private func dropPending() {
        connection?.queuedResponseBytes -= pending.readableBytes
        pending.clear()
    }

    /// Submits response headers (first time) or resumes the deferred data provider.
    private func submitResponse() {
        guard let connection else { return }
        if !headersSubmitted {
            headersSubmitted = true
            connection.submitResponseHeaders(self)
        } else if deferred {
            deferred = false
            connection.resumeData(self)
        }
        connection.scheduleFlush()
    }

    /// Answers a plain HTTP request (on the event loop).
    func respondPlain(_ response: HTTP1Response) {
        guard !finished, !closed, let connection else { return }
        finished = true
        plainResponse = true
        headersSubmitted = true
        dropPending()
        pending = PendingData(ByteBuffer(bytes: response.body))
        connection.queuedResponseBytes += pending.readableBytes
        connection.submitPlainResponse(self, response)
        if let stream = response.bodyStream { startPlainBodyStream(stream) }
        connection.scheduleFlush()
    }

    /// The stream closed (reset, completed or connection gone).
    func closedByTransport() {
        guard !closed else { return }
        closed = true
        plainBodyWriter?.connectionClosed()
        plainBodyWriter = nil
        cancelDeadline()
        let wasFinished = finished
        finished = true
        let observer = self.observer
        self.observer = nil
        inbound = nil
        if !wasFinished || trailerStatus == nil && pending.readableBytes > 0 {
            observer?.cancelled()
        }
        dropPending()  // the stream is gone: nothing more will be sent
        if !wasFinished { noteHandled(.cancelled) }
    }

    // MARK: Deadline (on the event loop)

    /// Arms the call's deadline: one scheduled callback, cancelled when the call ends first.
    /// If the loop is shutting down the call goes without (the connection is closing anyway).
    func startDeadline(_ deadline: NIODeadline) {
        deadlineCallback = try? eventLoop.scheduleCallback(at: deadline, handler: self)
    }

    private func cancelDeadline() {
        if let callback = deadlineCallback {
            deadlineCallback = nil
            callback.cancel()
        }
    }

    /// The deadline passed before the handler finished: end the call as grpc-go's server does
    /// when a handler returns its expired context's error (DEADLINE_EXCEEDED, "context deadline
    /// exceeded"). Response messages not yet taken by HTTP/2 are dropped (the client stopped
    /// waiting for them), request messages still arriving are discarded, a streaming handler
    /// sees cancellation, and a late completion or `send` is ignored.
    fileprivate func deadlineExceeded() {
        deadlineCallback = nil
        guard !finished, !closed else { return }
        discardInput = true
        inbound = nil
        dropPending()
        finishOnLoop(GRPCStatus(.deadlineExceeded, "context deadline exceeded"))
        let observer = self.observer
        self.observer = nil
        observer?.cancelled()
    }

    /// Fills an HTTP/2 DATA frame payload from the pending response bytes.
    /// Called by nghttp2 (through the data provider) on the event loop.
    func readData(into buf: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>,
                  session: OpaquePointer) -> Int {
        let count = pending.read(into: buf, count: length)
        if count > 0 {
            connection?.queuedResponseBytes -= count
            if observer != nil {
                drainedSinceNotify += count
                connection?.noteDrained(self)
            }
        }
        if pending.readableBytes == 0 {
            if plainResponse {
                if !plainStreamOpen {
                    flags.pointee |= H2.eof
                } else if count == 0 {
                    deferred = true
                    return H2.deferred
                }
            } else if let status = trailerStatus {
                flags.pointee |= H2.eof | H2.noEndStream
                let rv: Int32
                if status.code == .ok && status.message.isEmpty {
                    let ok = StaticHeaderList.okTrailers
                    rv = nghttp2_submit_trailer(session, streamID, ok.pointer, ok.count)
                } else {
                    var trailers = [("grpc-status", String(status.code.rawValue))]
                    if !status.message.isEmpty {
                        trailers.append(("grpc-message", GRPCStatus.percentEncode(status.message)))
                    }
                    rv = withHeaderList(trailers) { nghttp2_submit_trailer(session, streamID, $0, $1) }
                }
                if rv != 0 { return Int(H2.callbackFailure) }
            } else if count == 0 {
                deferred = true
                return H2.deferred
            }
        }
        return count
    }
}

extension ServerCall: NIOScheduledCallbackHandler {
    func handleScheduledCallback(eventLoop: some EventLoop) {
        deadlineExceeded()
    }
}
