import NIOCore
import NIOHTTP1

/// A response body produced over time (e.g. newline-delimited JSON from a streaming call),
/// sent with chunked transfer encoding as it comes. HTTP/1.1 only: over HTTP/2 the response
/// ends after the head with an empty body.
public struct HTTP1BodyStream: Sendable {
    /// Runs once, on the connection's event loop, after the response head was written.
    public var start: @Sendable (HTTP1BodyWriter) -> Void

    public init(start: @escaping @Sendable (HTTP1BodyWriter) -> Void) {
        self.start = start
    }
}

/// Writes the parts of an `HTTP1BodyStream`. Callable from any thread; writes happen on the
/// connection's event loop in the order they were made. After `finish` or once the
/// connection closed, writes are ignored.
///
/// Invariant: `finished` and `onClose` are touched on `eventLoop` only (entry points hop).
public final class HTTP1BodyWriter: @unchecked Sendable {
    public let eventLoop: any EventLoop
    private let channel: any Channel
    private let ended: @Sendable () -> Void
    private var finished = false
    private var closed = false
    private var onClose: (@Sendable () -> Void)?

    /// `ended` runs once on the event loop after `finish` wrote the last chunk.
    init(channel: any Channel, ended: @escaping @Sendable () -> Void) {
        self.channel = channel
        self.eventLoop = channel.eventLoop
        self.ended = ended
    }

    /// Sends `bytes` as one chunk (flushed). `written` runs on the event loop once the bytes
    /// were handed to the socket or could not be (the connection closed).
    public func write(_ bytes: ByteBuffer, written: (@Sendable () -> Void)? = nil) {
        onLoop { [self] in
            guard !finished else { written?(); return }
            let done = channel.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(bytes))))
            if let written { done.whenComplete { _ in written() } }
        }
    }

    /// Ends the body (the last chunk). Only the first call counts.
    public func finish() {
        onLoop { [self] in
            guard !finished else { return }
            finished = true
            onClose = nil
            channel.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { [ended] _ in ended() }
        }
    }

    /// Sets the callback run (once, on the event loop) if the connection closes before
    /// `finish`; runs it now if that already happened.
    public func setOnClose(_ callback: @escaping @Sendable () -> Void) {
        onLoop { [self] in
            if closed { return callback() }
            if finished { return }
            onClose = callback
        }
    }

    /// The connection closed (on the event loop).
    func connectionClosed() {
        closed = true
        guard !finished else { return }
        finished = true
        let callback = onClose
        onClose = nil
        callback?()
    }

    private func onLoop(_ body: @escaping @Sendable () -> Void) {
        if eventLoop.inEventLoop { body() } else { eventLoop.execute(body) }
    }
}
