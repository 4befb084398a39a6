import CNghttp2
import NIOCore

/// Drives an nghttp2 client session over a NIO channel: starts calls, writes request bodies,
/// delivers response messages and statuses. Loop-confined (see `ClientCall`).
final class ClientConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let authority: String
    let scheme: String
    var session: OpaquePointer?
    var context: ChannelHandlerContext?
    var calls: [Int32: ClientCall] = [:]
    private var inRead = false
    private var producing = false
    private var flushScheduled = false
    private var wroteSinceFlush = false
    private var closedError: GRPCStatus?
    private var headerCache: [String: OwnedHeaderList] = [:]

    init(authority: String, scheme: String) {
        self.authority = authority
        self.scheme = scheme
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        session = makeClientSession(for: self)
        if session == nil { context.close(promise: nil) }
        produceOutput()
        flushIfNeeded()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown(GRPCStatus(.unavailable, "connection closed"))
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown(GRPCStatus(.unavailable, "connection closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        tearDown(GRPCStatus(.unavailable, "connection error: \(error)"))
        context.close(promise: nil)
    }

    private func tearDown(_ status: GRPCStatus) {
        if closedError == nil { closedError = status }
        let open = calls
        calls = [:]
        for call in open.values {
            call.localFailure = call.localFailure ?? status
            call.finish(errorCode: H2.noError)
        }
        if let session {
            nghttp2_session_del(session)
            self.session = nil
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard let session else { return }
        inRead = true
        let rv = buffer.withUnsafeReadableBytes { bytes in
            nghttp2_session_mem_recv(session, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        }
        inRead = false
        produceOutput()
        if rv < 0 {
            flushIfNeeded()
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flushIfNeeded()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            produceOutput()
            flushIfNeeded()
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Calls (on the event loop)

    func start(_ call: ClientCall) {
        guard let session, closedError == nil else {
            call.localFailure = closedError ?? GRPCStatus(.unavailable, "connection closed")
            call.finish(errorCode: H2.noError)
            return
        }
        call.connection = self
        var provider = nghttp2_data_provider(
            source: nghttp2_data_source(ptr: Unmanaged.passUnretained(call).toOpaque()),
            read_callback: clientDataSourceRead)
        let id: Int32
        if call.timeout == nil && call.metadata.isEmpty {
            // The common call: its header list depends on the path only; build it once.
            let headers = plainRequestHeaders(path: call.path)
            id = nghttp2_submit_request(session, nil, headers.pointer, headers.count, &provider, nil)
        } else {
            var headers = requestHeaders(path: call.path)
            if let timeout = call.timeout {
                headers.append(("grpc-timeout", "\(max(1, timeout.nanoseconds / 1000))u"))
            }
            headers.append(contentsOf: call.metadata)
            id = withHeaderList(headers) { nghttp2_submit_request(session, nil, $0, $1, &provider, nil) }
        }
        guard id > 0 else {
            call.localFailure = GRPCStatus(.unavailable, "cannot start stream: \(String(cString: nghttp2_strerror(id)))")
            call.finish(errorCode: H2.noError)
            return
        }
        call.streamID = id
        calls[id] = call
        if let timeout = call.timeout {
            call.deadlineTask = context?.eventLoop.scheduleTask(in: timeout) { [self] in
                call.localFailure = GRPCStatus(.deadlineExceeded, "context deadline exceeded")
                reset(call, errorCode: H2.cancel)
            }
        }
        scheduleFlush()
    }

    /// The request headers every call sends.
    private func requestHeaders(path: String) -> [(String, String)] {
        [(":method", "POST"), (":scheme", scheme), (":path", path),
         (":authority", authority), ("content-type", "application/grpc"), ("te", "trailers")]
    }

    /// `requestHeaders(path:)` as a list built once per path (a connection calls a few methods).
    private func plainRequestHeaders(path: String) -> OwnedHeaderList {
        if let list = headerCache[path] { return list }
        let list = OwnedHeaderList(requestHeaders(path: path))
        if headerCache.count < 64 { headerCache[path] = list }
        return list
    }

    func send(_ call: ClientCall, _ framed: ByteBuffer?, end: Bool) {
        guard !call.closed, !call.inputFinished else { return }
        if let framed { call.append(framed) }
        if end { call.inputFinished = true }
        if call.deferred, let session, call.streamID > 0 {
            call.deferred = false
            _ = nghttp2_session_resume_data(session, call.streamID)
        }
        scheduleFlush()
    }

    func reset(_ call: ClientCall, errorCode: UInt32) {
        guard let session, !call.closed, call.streamID > 0 else { return }
        nghttp2_submit_rst_stream(session, H2.none, call.streamID, errorCode)
        scheduleFlush()
    }

    func goAway() {
        guard let session else { return }
        _ = nghttp2_session_terminate_session(session, H2.noError)
        scheduleFlush()
    }

    // MARK: Output

    func scheduleFlush() {
        if inRead || producing || flushScheduled { return }
        guard let context else { return }
        flushScheduled = true
        context.eventLoop.execute {
            self.flushScheduled = false
            self.produceOutput()
            self.flushIfNeeded()
        }
    }

    func produceOutput() {
        guard self.session != nil, let context, !producing else { return }
        producing = true
        var fatal = false
        // Re-check the session each round: a failed write can close the channel and tear it down.
        while let session = self.session, context.channel.isWritable {
            var out = context.channel.allocator.buffer(capacity: 16 * 1024)
            while out.readableBytes < 256 * 1024 {
                var pointer: UnsafePointer<UInt8>?
                let n = nghttp2_session_mem_send(session, &pointer)
                if n < 0 { fatal = true; break }
                if n == 0 { break }
                out.writeBytes(UnsafeRawBufferPointer(start: pointer, count: n))
            }
            if out.readableBytes == 0 { break }
            context.write(wrapOutboundOut(out), promise: nil)
            wroteSinceFlush = true
            if fatal { break }
        }
        producing = false
        let finished = self.session.map {
            nghttp2_session_want_read($0) == 0 && nghttp2_session_want_write($0) == 0
        } ?? false
        if fatal || finished {
            flushIfNeeded()
            context.close(promise: nil)
        }
    }

    func flushIfNeeded() {
        if wroteSinceFlush, let context {
            wroteSinceFlush = false
            context.flush()
        }
    }
}

/// Creates the nghttp2 client session (user data: `handler`, unretained) and queues SETTINGS.
private func makeClientSession(for handler: ClientConnectionHandler) -> OpaquePointer? {
    var callbacks: OpaquePointer?
    guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else { return nil }
    defer { nghttp2_session_callbacks_del(callbacks) }
    nghttp2_session_callbacks_set_on_header_callback(callbacks, clientOnHeader)
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, clientOnFrameRecv)
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, clientOnDataChunkRecv)
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, clientOnStreamClose)
    var option: OpaquePointer?
    guard nghttp2_option_new(&option) == 0, let option else { return nil }
    defer { nghttp2_option_del(option) }
    nghttp2_option_set_no_closed_streams(option, 1)
    var session: OpaquePointer?
    guard nghttp2_session_client_new2(&session, callbacks, Unmanaged.passUnretained(handler).toOpaque(), option) == 0,
          let session else { return nil }
    var settings = [
        nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: 0),
        nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: 4 << 20),
    ]
    nghttp2_submit_settings(session, H2.none, &settings, settings.count)
    nghttp2_session_set_local_window_size(session, H2.none, 0, 16 << 20)
    return session
}

@inline(__always)
private func clientConnection(_ userData: UnsafeMutableRawPointer?) -> ClientConnectionHandler {
    Unmanaged<ClientConnectionHandler>.fromOpaque(userData!).takeUnretainedValue()
}

private func clientOnHeader(_ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?,
                            _ name: UnsafePointer<UInt8>?, _ nameLength: Int,
                            _ value: UnsafePointer<UInt8>?, _ valueLength: Int,
                            _ flags: UInt8, _ userData: UnsafeMutableRawPointer?) -> Int32 {
    let frame = frame!.pointee
    guard frame.hd.type == H2.headers, let call = clientConnection(userData).calls[frame.hd.stream_id] else { return 0 }
    // Only three headers matter; compare bytes, make strings only for those.
    func text() -> String { String(decoding: UnsafeBufferPointer(start: value, count: valueLength), as: UTF8.self) }
    if bytesEqual(name, nameLength, ":status") {
        call.httpStatus = Int(text())
    } else if bytesEqual(name, nameLength, "grpc-status") {
        call.grpcStatus = Int(text())
    } else if bytesEqual(name, nameLength, "grpc-message") {
        call.grpcMessage = text()
    }
    return 0
}

private func clientOnFrameRecv(_ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?,
                               _ userData: UnsafeMutableRawPointer?) -> Int32 {
    let frame = frame!.pointee
    if frame.hd.type == H2.data, let call = clientConnection(userData).calls[frame.hd.stream_id] {
        call.deliverMessages()
    }
    return 0
}

private func clientOnDataChunkRecv(_ session: OpaquePointer?, _ flags: UInt8, _ streamID: Int32,
                                   _ data: UnsafePointer<UInt8>?, _ length: Int,
                                   _ userData: UnsafeMutableRawPointer?) -> Int32 {
    guard let call = clientConnection(userData).calls[streamID], !call.closed else { return 0 }
    call.deframer.append(UnsafeRawBufferPointer(start: data, count: length))
    return 0
}

private func clientOnStreamClose(_ session: OpaquePointer?, _ streamID: Int32, _ errorCode: UInt32,
                                 _ userData: UnsafeMutableRawPointer?) -> Int32 {
    if let call = clientConnection(userData).calls.removeValue(forKey: streamID) {
        call.finish(errorCode: errorCode)
    }
    return 0
}

private func clientDataSourceRead(_ session: OpaquePointer?, _ streamID: Int32, _ buf: UnsafeMutablePointer<UInt8>?,
                                  _ length: Int, _ flags: UnsafeMutablePointer<UInt32>?,
                                  _ source: UnsafeMutablePointer<nghttp2_data_source>?,
                                  _ userData: UnsafeMutableRawPointer?) -> Int {
    let call = Unmanaged<ClientCall>.fromOpaque(source!.pointee.ptr).takeUnretainedValue()
    return call.readData(into: buf!, length: length, flags: flags!)
}
