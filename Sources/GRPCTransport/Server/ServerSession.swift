import CNghttp2
import NIOCore

/// Creates the nghttp2 server session for a connection and queues its SETTINGS.
/// The session's user data is `handler`, unretained (the handler deletes the session).
func makeServerSession(for handler: ServerConnectionHandler) -> OpaquePointer? {
    var callbacks: OpaquePointer?
    guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else { return nil }
    defer { nghttp2_session_callbacks_del(callbacks) }
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, serverOnBeginHeaders)
    nghttp2_session_callbacks_set_on_header_callback(callbacks, serverOnHeader)
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, serverOnFrameRecv)
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, serverOnDataChunkRecv)
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, serverOnStreamClose)
    nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, serverOnFrameSend)

    var option: OpaquePointer?
    guard nghttp2_option_new(&option) == 0, let option else { return nil }
    defer { nghttp2_option_del(option) }
    nghttp2_option_set_no_closed_streams(option, 1)
    // nghttp2's HTTP messaging checks reset a stream whose :authority is not a bare RFC 3986
    // authority. etcd's Go client sends the endpoint as given ("http://127.0.0.1:2379") when it
    // dials one member (etcdctl endpoint status, defrag, hashkv), and Go's server accepts it,
    // so we do our own request checks instead (see `ServerConnectionHandler.startCall`).
    nghttp2_option_set_no_http_messaging(option, 1)
    // Flood limits nghttp2 enforces itself (each ends the session with GOAWAY). The values are
    // nghttp2's defaults, set here so that they are stated and survive a library upgrade:
    // SETTINGS ACK / PING ACK frames queued for a peer that does not read, entries per SETTINGS
    // frame, CONTINUATION frames per header block, and the "rapid reset" token bucket (RST_STREAM
    // from the peer: a burst of 1000, then 33 a second).
    nghttp2_option_set_max_outbound_ack(option, 1000)
    nghttp2_option_set_max_settings(option, 32)
    nghttp2_option_set_max_continuations(option, 8)
    nghttp2_option_set_stream_reset_rate_limit(option, 1000, 33)

    var session: OpaquePointer?
    let userData = Unmanaged.passUnretained(handler).toOpaque()
    guard nghttp2_session_server_new2(&session, callbacks, userData, option) == 0, let session else {
        return nil
    }
    let configuration = handler.configuration
    var settings = [
        nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue),
                               value: configuration.maxConcurrentStreams),
        nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue),
                               value: UInt32(configuration.initialStreamWindowSize)),
        nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue),
                               value: UInt32(clamping: configuration.limits.maxHeaderListSize)),
    ]
    nghttp2_submit_settings(session, H2.none, &settings, settings.count)
    nghttp2_session_set_local_window_size(session, H2.none, 0, configuration.connectionWindowSize)
    return session
}

@inline(__always)
private func connection(_ userData: UnsafeMutableRawPointer?) -> ServerConnectionHandler {
    Unmanaged<ServerConnectionHandler>.fromOpaque(userData!).takeUnretainedValue()
}

private func serverOnBeginHeaders(_ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?,
                                  _ userData: UnsafeMutableRawPointer?) -> Int32 {
    let frame = frame!.pointee
    if frame.hd.type == H2.headers && frame.headers.cat == H2.requestCategory {
        connection(userData).beginCall(streamID: frame.hd.stream_id)
    }
    return 0
}

private func serverOnHeader(_ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?,
                            _ name: UnsafePointer<UInt8>?, _ nameLength: Int,
                            _ value: UnsafePointer<UInt8>?, _ valueLength: Int,
                            _ flags: UInt8, _ userData: UnsafeMutableRawPointer?) -> Int32 {
    let frame = frame!.pointee
    let handler = connection(userData)
    guard frame.hd.type == H2.headers, frame.headers.cat == H2.requestCategory,
          let call = handler.calls[frame.hd.stream_id] else { return 0 }
    // RFC 9113 6.5.2 size, counted after HPACK decoding: a bomb (one large dynamic-table entry
    // referenced many times) is stopped here, before its fields are copied.
    call.headerListSize += nameLength + valueLength + 32
    if call.headerListSize > handler.configuration.limits.maxHeaderListSize {
        return handler.refuseHeaderList(call)
    }
    func text(_ p: UnsafePointer<UInt8>?, _ n: Int) -> String {
        String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }
    if nameLength > 0 && name![0] == UInt8(ascii: ":") {
        if bytesEqual(name, nameLength, ":path") {
            call.path = text(value, valueLength)
        } else if bytesEqual(name, nameLength, ":method") {
            call.httpMethod = text(value, valueLength)
        }
        return handler.pauseInputIfRequested()
    }
    if bytesEqual(name, nameLength, "content-type") {
        // The usual value as a literal: no string to allocate per call.
        call.contentType = bytesEqual(value, valueLength, "application/grpc") ? "application/grpc" : text(value, valueLength)
    } else if bytesEqual(name, nameLength, "te") || bytesEqual(name, nameLength, "content-length")
                || bytesEqual(name, nameLength, "grpc-accept-encoding") {
        return 0
    } else if bytesEqual(name, nameLength, "grpc-timeout") {
        call.timeout = text(value, valueLength)
    } else if bytesEqual(name, nameLength, "grpc-encoding") {
        call.encoding = text(value, valueLength)
    } else {
        let key = text(name, nameLength)
        let value = text(value, valueLength)
        if call.metadata[key] != nil {
            call.metadata[key]!.append(",")  // in place: repeated names cost linear time
            call.metadata[key]!.append(value)
        } else {
            call.metadata[key] = value
        }
    }
    return handler.pauseInputIfRequested()
}

private func serverOnFrameRecv(_ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?,
                               _ userData: UnsafeMutableRawPointer?) -> Int32 {
    let frame = frame!.pointee
    let handler = connection(userData)
    switch frame.hd.type {
    case H2.headers:
        handler.noteProgress()
        guard let call = handler.calls[frame.hd.stream_id] else { return 0 }
        if frame.headers.cat == H2.requestCategory { handler.startCall(call) }
        if frame.hd.flags & H2.endStream != 0 { handler.receivedEndOfStream(call) }
    case H2.data:
        if frame.hd.length == 0 && frame.hd.flags & H2.endStream == 0 {
            if !handler.noteFrameWithoutProgress() { return H2.callbackFailure }
        } else {
            handler.noteProgress()
        }
        guard let call = handler.calls[frame.hd.stream_id] else { return 0 }
        handler.receivedData(call)
        if frame.hd.flags & H2.endStream != 0 { handler.receivedEndOfStream(call) }
    case H2.ping:
        if frame.hd.flags & H2.ack != 0 {
            handler.receivedPingAck()
        } else {
            handler.receivedPing()
        }
    case H2.settings:
        if frame.hd.flags & H2.ack == 0 { handler.receivedSettings() }
        if !handler.noteFrameWithoutProgress() { return H2.callbackFailure }
    case H2.windowUpdate, H2.priority, H2.rstStream:
        if !handler.noteFrameWithoutProgress() { return H2.callbackFailure }
    default:
        break
    }
    return 0
}

private func serverOnDataChunkRecv(_ session: OpaquePointer?, _ flags: UInt8, _ streamID: Int32,
                                   _ data: UnsafePointer<UInt8>?, _ length: Int,
                                   _ userData: UnsafeMutableRawPointer?) -> Int32 {
    guard let call = connection(userData).calls[streamID], !call.discardInput else { return 0 }
    let handler = connection(userData)
    if call.plainHTTP && length > handler.configuration.maxPlainRequestBodySize - call.deframer.buffer.readableBytes {
        call.plainBodyTooLarge = true  // answered 413 (GRPCServerConfiguration.maxPlainRequestBodySize)
        return 0
    }
    call.deframer.append(UnsafeRawBufferPointer(start: data, count: length))
    return 0
}

private func serverOnStreamClose(_ session: OpaquePointer?, _ streamID: Int32, _ errorCode: UInt32,
                                 _ userData: UnsafeMutableRawPointer?) -> Int32 {
    connection(userData).streamClosed(streamID: streamID)
    return 0
}

private func serverOnFrameSend(_ session: OpaquePointer?, _ frame: UnsafePointer<nghttp2_frame>?,
                               _ userData: UnsafeMutableRawPointer?) -> Int32 {
    let frame = frame!.pointee
    if frame.hd.type == H2.headers || frame.hd.type == H2.data {
        let handler = connection(userData)
        handler.resetPingStrikes = true
        handler.noteProgress()
        if frame.hd.type == H2.headers && frame.hd.flags & H2.endStream != 0 {
            handler.sentEndOfStream(streamID: frame.hd.stream_id)
        }
    }
    return 0
}

/// The data provider's read callback for response bodies (see `ServerCall.readData`).
func serverDataSourceRead(_ session: OpaquePointer?, _ streamID: Int32, _ buf: UnsafeMutablePointer<UInt8>?,
                          _ length: Int, _ flags: UnsafeMutablePointer<UInt32>?,
                          _ source: UnsafeMutablePointer<nghttp2_data_source>?,
                          _ userData: UnsafeMutableRawPointer?) -> Int {
    let call = Unmanaged<ServerCall>.fromOpaque(source!.pointee.ptr).takeUnretainedValue()
    return call.readData(into: buf!, length: length, flags: flags!, session: session!)
}
