import CNghttp2
import NIOCore
import NIOSSL

/// A unary (or server-streaming) method's dispatch function (see `MethodHandler.unary`).
typealias UnaryHandler = @Sendable (ByteBuffer, ServerCall) -> Void

/// Sent down a server connection's pipeline to start a graceful shutdown: GOAWAY, let the
/// calls in flight finish, then close.
struct GracefulShutdownEvent: Sendable {}

/// Serves gRPC over one HTTP/2 connection: feeds received bytes to an nghttp2 server session
/// (`mem_recv`), dispatches calls, and writes what the session produces (`mem_send`).
///
/// Everything runs on the channel's event loop; the nghttp2 callbacks reach this object
/// through the session's user data (an unretained pointer, valid until the session is
/// deleted in `handlerRemoved`).
final class ServerConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let services: [String: Service]
    /// Every method by its full path (`/package.Service/Method`): one lookup per call.
    private let methodsByPath: [String: ServiceMethod]
    let configuration: GRPCServerConfiguration
    var session: OpaquePointer?
    var context: ChannelHandlerContext?
    var eventLoop: (any EventLoop)!
    var calls: [Int32: ServerCall] = [:]

    private var inRead = false
    private var producing = false
    private var flushScheduled = false
    private var wroteSinceFlush = false
    private var closeAfterFlush = false
    private var drainedCalls: [ServerCall] = []
    var peerCommonName: String?
    var remoteAddress: SocketAddress?

    // Keepalive and ping policy. Times are the event loop's clock (`eventLoop.now`: the real
    // clock, or an EmbeddedEventLoop's when the handler is driven in process).
    private var lastReadTime = NIODeadline.now()
    var lastPingAt: NIODeadline?
    var pingStrikes = 0
    var resetPingStrikes = false
    private var keepaliveTask: Scheduled<Void>?
    private var pingTimeoutTask: Scheduled<Void>?
    private var awaitingPingAck = false

    private let inboxes: LoopInboxes?
    private var inbox: LoopInbox!

    // Limits (see `GRPCServerConfiguration.Limits`).
    private var handshakeTask: Scheduled<Void>?
    /// Frames received in a row that made no progress (see `noteFrameWithoutProgress`).
    private var framesWithoutProgress = 0
    /// Requests started since the current read event (or resumption) began, and when it began.
    private var requestsThisRead = 0
    private var readStarted = NIODeadline.now()
    /// Set when the next header callback should pause `mem_recv` (see `pauseInputIfRequested`).
    private var pauseRequested = false
    /// Received bytes not yet fed to the session (input is paused while this is non-nil).
    private var heldInput: ByteBuffer?
    private var resumeScheduled = false
    /// Response bytes queued in this connection's calls and not yet taken by HTTP/2.
    var queuedResponseBytes = 0
    /// Unary requests received while `queuedResponseBytes` was over its limit, in arrival order.
    private var waitingRequests = CircularBuffer<(ServerCall, ByteBuffer, UnaryHandler)>()

    init(services: [String: Service], configuration: GRPCServerConfiguration, inboxes: LoopInboxes? = nil) {
        self.services = services
        self.inboxes = inboxes
        var byPath: [String: ServiceMethod] = [:]
        for service in services.values {
            for (name, method) in service.methods { byPath["/\(service.name)/\(name)"] = method }
        }
        methodsByPath = byPath
        self.configuration = configuration
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.eventLoop = context.eventLoop
        inbox = inboxes?.inbox(for: context.eventLoop) ?? LoopInbox(eventLoop: context.eventLoop)
        self.remoteAddress = context.channel.remoteAddress
        lastReadTime = context.eventLoop.now
        if let tls = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
           let certificate = tls.peerCertificate {
            peerCommonName = commonName(of: certificate)
        }
        session = makeServerSession(for: self)
        guard session != nil else {
            context.close(promise: nil)
            return
        }
        scheduleKeepalive(in: configuration.keepalive.interval)
        handshakeTask = context.eventLoop.scheduleTask(in: configuration.limits.handshakeTimeout) { [self] in
            self.context?.close(promise: nil)  // no SETTINGS from the client in time
        }
        produceOutput()
        flushIfNeeded()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    private func tearDown() {
        keepaliveTask?.cancel()
        pingTimeoutTask?.cancel()
        handshakeTask?.cancel()
        heldInput = nil
        waitingRequests.removeAll()
        let open = calls
        calls = [:]
        for call in open.values { call.closedByTransport() }
        if let session {
            nghttp2_session_del(session)
            self.session = nil
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        guard session != nil, !closeAfterFlush else { return }
        lastReadTime = eventLoop.now
        if heldInput != nil {
            // Still working through earlier bytes (reads are off; this one was already under way).
            heldInput!.writeBuffer(&buffer)
            return
        }
        requestsThisRead = 0
        feed(buffer)
        produceOutput()
    }

    /// Feeds received bytes to the session. A limit may pause it (see `pauseInputIfRequested`):
    /// the rest is held, reading stops, and `resumeInput` continues once the limit allows.
    private func feed(_ input: ByteBuffer) {
        guard let session else { return }
        var input = input
        inRead = true
        readStarted = .now()
        let rv = input.withUnsafeReadableBytes { bytes in
            nghttp2_session_mem_recv(session, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        inRead = false
        pauseRequested = false
        if rv < 0 {
            // Fatal (bad preface, flood, ...): send what nghttp2 queued (GOAWAY), then close.
            closeAfterFlush = true
            return
        }
        input.moveReaderIndex(forwardBy: rv)
        guard input.readableBytes > 0, !closeAfterFlush else { return }
        heldInput = input
        setReading(false)
        scheduleResume()
    }

    /// Continues with held input on a later event-loop turn, after the loop has served its
    /// other connections' I/O (a task due now would run before the loop polls again).
    private func scheduleResume() {
        guard !resumeScheduled, context?.channel.isWritable == true else { return }  // else: writability resumes
        resumeScheduled = true
        eventLoop.scheduleTask(in: .microseconds(50)) { [self] in
            resumeScheduled = false
            resumeInput()
        }
    }

    private func resumeInput() {
        guard let input = heldInput, session != nil, context?.channel.isWritable == true else { return }
        heldInput = nil
        requestsThisRead = 0
        feed(input)
        if heldInput == nil { setReading(true) }
        produceOutput()
        flushIfNeeded()
    }

    private func setReading(_ on: Bool) {
        try? context?.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: on)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            produceOutput()
            flushIfNeeded()
            resumeInput()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is GracefulShutdownEvent {
            startGracefulShutdown()
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Output

    /// Arranges for queued frames to be written soon (coalescing completions of one loop tick).
    func scheduleFlush() {
        if inRead || producing || flushScheduled { return }
        flushScheduled = true
        eventLoop.execute {
            self.flushScheduled = false
            self.produceOutput()
            self.flushIfNeeded()
        }
    }

    /// Serializes frames from the session into the channel while it is writable.
    func produceOutput() {
        guard self.session != nil, let context, !producing else { return }
        producing = true
        // Re-check the session each round: a failed write can close the channel and tear it down.
        while let session = self.session, context.channel.isWritable {
            var out = context.channel.allocator.buffer(capacity: 16 * 1024)
            while out.readableBytes < 256 * 1024 {
                var pointer: UnsafePointer<UInt8>?
                let n = nghttp2_session_mem_send(session, &pointer)
                if n < 0 {
                    closeAfterFlush = true
                    break
                }
                if n == 0 { break }
                out.writeBytes(UnsafeRawBufferPointer(start: pointer, count: n))
            }
            if out.readableBytes == 0 { break }
            context.write(wrapOutboundIn(out), promise: nil)
            wroteSinceFlush = true
            if closeAfterFlush { break }
        }
        producing = false
        notifyDrained()
        startWaitingRequests()
        if let session = self.session, nghttp2_session_want_read(session) == 0
            && nghttp2_session_want_write(session) == 0 {
            closeAfterFlush = true
        }
        if closeAfterFlush {
            flushIfNeeded()
            context.close(promise: nil)
        }
    }

    private func wrapOutboundIn(_ buffer: ByteBuffer) -> NIOAny { wrapOutboundOut(buffer) }

    func flushIfNeeded() {
        if wroteSinceFlush, let context {
            wroteSinceFlush = false
            context.flush()
        }
    }

    func noteDrained(_ call: ServerCall) {
        drainedCalls.append(call)
    }

    private func notifyDrained() {
        guard !drainedCalls.isEmpty else { return }
        let list = drainedCalls
        drainedCalls = []
        for call in list where call.drainedSinceNotify > 0 {
            let bytes = call.drainedSinceNotify
            call.drainedSinceNotify = 0
            if let callback = call.observer?.drained(bytes: bytes) { callback() }
        }
    }

    // MARK: Responses (called by ServerCall on the event loop)

    func submitResponseHeaders(_ call: ServerCall) {
        guard let session else { return }
        var provider = nghttp2_data_provider(
            source: nghttp2_data_source(ptr: Unmanaged.passUnretained(call).toOpaque()),
            read_callback: serverDataSourceRead)
        let headers = StaticHeaderList.grpcResponse
        nghttp2_submit_response(session, call.streamID, headers.pointer, headers.count, &provider)
    }

    func submitTrailersOnly(_ call: ServerCall, status: GRPCStatus, httpStatus: Int = 200) {
        guard let session else { return }
        var headers = [(":status", String(httpStatus)), ("content-type", "application/grpc"),
                       ("grpc-status", String(status.code.rawValue))]
        if !status.message.isEmpty {
            headers.append(("grpc-message", GRPCStatus.percentEncode(status.message)))
        }
        _ = withHeaderList(headers) { nghttp2_submit_response(session, call.streamID, $0, $1, nil) }
        scheduleFlush()
    }

    func resumeData(_ call: ServerCall) {
        guard let session else { return }
        _ = nghttp2_session_resume_data(session, call.streamID)
    }

    // MARK: Requests (called from the nghttp2 callbacks)

    func beginCall(streamID: Int32) {
        requestsThisRead += 1
        let limits = configuration.limits
        if requestsThisRead > limits.maxRequestsPerRead || context?.channel.isWritable == false
            || NIODeadline.now() - readStarted > limits.maxTimePerRead {
            pauseRequested = true  // served on a later turn, or once the peer reads what it was sent
        }
        calls[streamID] = ServerCall(
            streamID: streamID, connection: self, eventLoop: eventLoop,
            highWatermark: configuration.streamHighWatermark, lowWatermark: configuration.streamLowWatermark)
    }

    func startCall(_ call: ServerCall) {
        guard call.contentType.hasPrefix("application/grpc") else {
            if configuration.http1Handler != nil {
                // Plain HTTP over HTTP/2 (e.g. an https scrape of /metrics that negotiated h2):
                // collect the body and answer from the HTTP handler at end of stream.
                call.plainHTTP = true
                return
            }
            call.discardInput = true
            call.finished = true
            call.headersSubmitted = true
            submitTrailersOnly(call, status: GRPCStatus(.internalError,
                "invalid gRPC request content-type \"\(call.contentType)\""), httpStatus: 415)
            return
        }
        // grpc-go decodes grpc-timeout with the other headers, before looking at the method: a
        // malformed value resets the stream (PROTOCOL_ERROR) and no handler runs.
        var deadline: NIODeadline?
        if let timeout = call.timeout {
            guard let amount = parseGRPCTimeout(timeout) else {
                call.discardInput = true
                call.finished = true
                call.headersSubmitted = true
                if let session {
                    nghttp2_submit_rst_stream(session, H2.none, call.streamID, H2.protocolError)
                    scheduleFlush()
                }
                return
            }
            deadline = eventLoop.now + amount
        }
        guard call.httpMethod == "POST" else {
            reject(call, GRPCStatus(.internalError, "transport: :method \"\(call.httpMethod)\" should be POST"))
            return
        }
        let path = call.path
        guard let method = methodsByPath[path] else {
            rejectUnknownMethod(call, path: path)
            return
        }
        call.context = CallContext(method: path, metadata: call.metadata, deadline: deadline,
                                   eventLoop: eventLoop, peerCommonName: peerCommonName,
                                   remoteAddress: remoteAddress, inbox: inbox)
        call.handler = method.handler
        call.monitor = method.monitor
        if let deadline { call.startDeadline(deadline) }
        if case .bidirectional(let start) = method.handler {
            call.inbound = start(call)
        }
    }

    /// Answers a call whose path names no method, with grpc-go's message for why.
    private func rejectUnknownMethod(_ call: ServerCall, path: String) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard path.hasPrefix("/"), parts.count == 3, !parts[1].isEmpty, !parts[2].isEmpty else {
            reject(call, GRPCStatus(.unimplemented, "malformed method name: \"\(path)\""))
            return
        }
        let serviceName = String(parts[1])
        let methodName = String(parts[2])
        guard services[serviceName] != nil else {
            reject(call, GRPCStatus(.unimplemented, "unknown service \(serviceName)"))
            return
        }
        reject(call, GRPCStatus(.unimplemented, "unknown method \(methodName) for service \(serviceName)"))
    }

    private func reject(_ call: ServerCall, _ status: GRPCStatus) {
        call.discardInput = true
        call.finishOnLoop(status)
    }

    func receivedData(_ call: ServerCall) {
        guard !call.discardInput, let handler = call.handler else { return }
        while !call.closed {
            let message: ByteBuffer?
            do {
                message = try call.deframer.next(maxMessageSize: configuration.maxReceiveMessageSize)
            } catch MessageDeframer.Failure.tooLarge(let size) {
                reject(call, GRPCStatus(.resourceExhausted,
                    "grpc: received message larger than max (\(size) vs. \(configuration.maxReceiveMessageSize))"))
                return
            } catch {
                let encoding = call.encoding ?? "identity"
                reject(call, encoding == "identity"
                    ? GRPCStatus(.internalError, "grpc: compressed flag set with identity or empty encoding")
                    : GRPCStatus(.unimplemented, "grpc: Decompressor is not installed for grpc-encoding \"\(encoding)\""))
                return
            }
            guard let message else { return }
            switch handler {
            case .unary(let handle):
                if call.requestReceived {
                    reject(call, GRPCStatus(.internalError, "grpc: received more than one request message for a unary call"))
                    return
                }
                call.requestReceived = true
                startUnary(handle, message, call)
            case .bidirectional:
                guard !call.finished else { return }
                call.inbound?.onMessage(message)
            }
        }
    }

    func receivedEndOfStream(_ call: ServerCall) {
        call.inputEnded = true
        if call.plainHTTP {
            servePlainHTTP(call)
            return
        }
        guard !call.discardInput, let handler = call.handler, !call.closed else { return }
        if !call.deframer.isEmpty {
            reject(call, GRPCStatus(.internalError, "grpc: request stream ended inside a message"))
            return
        }
        switch handler {
        case .unary:
            if !call.requestReceived {
                reject(call, GRPCStatus(.internalError, "grpc: request stream ended without a request message"))
            }
        case .bidirectional:
            if !call.finished { call.inbound?.onEnd() }
        }
    }

    private func servePlainHTTP(_ call: ServerCall) {
        guard let handler = configuration.http1Handler, !call.closed else { return }
        var headers = call.metadata.map { ($0.key, $0.value) }
        if !call.contentType.isEmpty { headers.append(("content-type", call.contentType)) }
        var body = call.deframer.buffer
        let request = HTTP1Request(method: call.httpMethod, uri: call.path, headers: headers,
                                   body: body.readBytes(length: body.readableBytes) ?? [])
        let loop = eventLoop!
        if call.plainBodyTooLarge {
            call.respondPlain(HTTP1Response(status: 413, body: "request body too large\n"))
            return
        }
        handler(request, loop).hop(to: loop).whenComplete { result in
            call.respondPlain((try? result.get()) ?? HTTP1Response(status: 500, body: "internal server error\n"))
        }
    }

    func submitPlainResponse(_ call: ServerCall, _ response: HTTP1Response) {
        guard let session else { return }
        var headers = [(":status", String(response.status)), ("content-type", response.contentType)]
        if response.bodyStream == nil { headers.append(("content-length", String(response.body.count))) }
        for (name, value) in response.headers { headers.append((name.lowercased(), value)) }
        var provider = nghttp2_data_provider(
            source: nghttp2_data_source(ptr: Unmanaged.passUnretained(call).toOpaque()),
            read_callback: serverDataSourceRead)
        _ = withHeaderList(headers) { nva, count in
            if response.body.isEmpty && response.bodyStream == nil {
                return nghttp2_submit_response(session, call.streamID, nva, count, nil)
            }
            return nghttp2_submit_response(session, call.streamID, nva, count, &provider)
        }
    }

    func streamClosed(streamID: Int32) {
        if let call = calls.removeValue(forKey: streamID) {
            call.closedByTransport()
        }
    }

    // MARK: Limits (see `GRPCServerConfiguration.Limits`)

    /// Runs a unary handler now, or after the connection's queued response bytes fall under
    /// their limit (a peer that does not read, or holds its windows shut, cannot make the
    /// server build responses without bound).
    private func startUnary(_ handle: @escaping UnaryHandler, _ message: ByteBuffer, _ call: ServerCall) {
        let limits = configuration.limits
        guard queuedResponseBytes > limits.maxQueuedResponseBytes || !waitingRequests.isEmpty else {
            handle(message, call)
            return
        }
        guard waitingRequests.count < limits.maxWaitingRequests else {
            goAway(H2.enhanceYourCalm, "too_many_queued_responses")
            return
        }
        waitingRequests.append((call, message, handle))
    }

    private func startWaitingRequests() {
        while !waitingRequests.isEmpty && queuedResponseBytes <= configuration.limits.maxQueuedResponseBytes {
            let (call, message, handle) = waitingRequests.removeFirst()
            if !call.closed { handle(message, call) }
        }
    }

    /// Called for a new request's header fields: `NGHTTP2_ERR_PAUSE` when `beginCall` asked for
    /// a pause (the request budget of this turn is spent, or the socket is full), else 0.
    func pauseInputIfRequested() -> Int32 {
        guard pauseRequested else { return 0 }
        pauseRequested = false
        return H2.pause
    }

    /// The request's header list passed `maxHeaderListSize`: reset the stream with
    /// FRAME_SIZE_ERROR (grpc-go's answer) and ignore the rest of its fields.
    func refuseHeaderList(_ call: ServerCall) -> Int32 {
        call.discardInput = true
        call.finished = true
        call.headersSubmitted = true
        guard let session, noteFrameWithoutProgress() else { return H2.callbackFailure }
        nghttp2_submit_rst_stream(session, H2.none, call.streamID, H2.frameSizeError)
        return H2.temporalCallbackFailure
    }

    /// A request or response byte moved: the peer is doing real work.
    func noteProgress() {
        framesWithoutProgress = 0
    }

    /// Counts a frame that made no progress; false (after submitting GOAWAY ENHANCE_YOUR_CALM)
    /// when the peer has sent too many in a row. The callback then fails, ending `mem_recv`.
    func noteFrameWithoutProgress() -> Bool {
        framesWithoutProgress += 1
        guard framesWithoutProgress > configuration.limits.maxFramesWithoutProgress else { return true }
        goAway(H2.enhanceYourCalm, "too_many_frames_without_progress")
        return false
    }

    /// The client's SETTINGS arrived: the handshake is complete.
    func receivedSettings() {
        handshakeTask?.cancel()
        handshakeTask = nil
    }

    /// Sends GOAWAY with `code` and `debug`, then closes once it is written.
    private func goAway(_ code: UInt32, _ debug: String) {
        guard let session, !closeAfterFlush else { return }
        let bytes = Array(debug.utf8)
        _ = nghttp2_submit_goaway(session, H2.none, nghttp2_session_get_last_proc_stream_id(session),
                                  code, bytes, bytes.count)
        closeAfterFlush = true
    }

    /// After the final HEADERS of a response went out: if the client is still sending, tell it
    /// to stop (RST_STREAM NO_ERROR), as gRPC servers do.
    func sentEndOfStream(streamID: Int32) {
        guard let session, let call = calls[streamID], !call.inputEnded else { return }
        nghttp2_submit_rst_stream(session, H2.none, streamID, H2.noError)
    }

    // MARK: Keepalive and ping policy

    /// grpc-go's enforcement policy: pings closer together than the minimum interval (2h with
    /// no active stream unless permitted) are strikes; the third strike gets GOAWAY.
    func receivedPing() {
        let now = eventLoop.now
        defer { lastPingAt = now }
        if resetPingStrikes {
            resetPingStrikes = false
            pingStrikes = 0
            return
        }
        let minimum: TimeAmount = calls.isEmpty && !configuration.keepalive.permitWithoutStream
            ? .hours(2) : configuration.keepalive.minClientPingInterval
        if let last = lastPingAt, last + minimum > now {
            pingStrikes += 1
        }
        if pingStrikes > 2 {
            goAway(H2.enhanceYourCalm, "too_many_pings")
        }
    }

    func receivedPingAck() {
        guard awaitingPingAck else { return }
        awaitingPingAck = false
        pingTimeoutTask?.cancel()
        pingTimeoutTask = nil
        scheduleKeepalive(in: configuration.keepalive.interval)
    }

    private func scheduleKeepalive(in delay: TimeAmount) {
        keepaliveTask?.cancel()
        keepaliveTask = eventLoop.scheduleTask(in: delay) { [self] in keepaliveFired() }
    }

    private func keepaliveFired() {
        guard let session else { return }
        let idle = eventLoop.now - lastReadTime
        let interval = configuration.keepalive.interval
        if idle < interval {
            scheduleKeepalive(in: interval - idle)
            return
        }
        _ = nghttp2_submit_ping(session, H2.none, nil)
        awaitingPingAck = true
        pingTimeoutTask = eventLoop.scheduleTask(in: configuration.keepalive.timeout) { [self] in
            context?.close(promise: nil)
        }
        produceOutput()
        flushIfNeeded()
    }

    // MARK: Graceful shutdown

    private func startGracefulShutdown() {
        guard let session else { return }
        _ = nghttp2_submit_goaway(session, H2.none, nghttp2_session_get_last_proc_stream_id(session),
                                  H2.noError, nil, 0)
        produceOutput()
        flushIfNeeded()
    }
}

/// The subject common name of a certificate, from NIOSSL's description of it.
func commonName(of certificate: NIOSSLCertificate) -> String? {
    let description = certificate.description
    guard let range = description.firstRange(of: ";common_name=") else { return nil }
    let rest = description[range.upperBound...]
    let end = rest.firstIndex(where: { $0 == ";" || $0 == ">" }) ?? rest.endIndex
    return String(rest[..<end])
}
