import NIOCore
import NIOHTTP1

/// A response body produced over time (e.g. newline-delimited JSON from a streaming call),
/// sent as it comes: with chunked transfer encoding over HTTP/1.1, as DATA frames over HTTP/2.
public struct HTTP1BodyStream: Sendable {
    /// Runs once, on the connection's event loop, after the response head was written.
    public var start: @Sendable (HTTP1BodyWriter) -> Void

    public init(start: @escaping @Sendable (HTTP1BodyWriter) -> Void) {
        self.start = start
    }
}

/// Writes the parts of an `HTTP1BodyStream`. Callable from any thread; writes happen on the
/// connection's event loop in the order they were made. After `finish` or once the
/// connection (or HTTP/2 stream) closed, writes are ignored.
///
/// Invariant: `finished`, `closed` and `onClose` are touched on `eventLoop` only (entry points
/// hop), which makes the `@unchecked Sendable` sound.
public final class HTTP1BodyWriter: @unchecked Sendable {
    public let eventLoop: any EventLoop
    private let sendPart: (ByteBuffer, (@Sendable () -> Void)?) -> Void
    private let sendEnd: () -> Void
    private var finished = false
    private var closed = false
    private var onClose: (@Sendable () -> Void)?

    /// `sendPart` writes one part and calls its callback once the bytes left (or cannot);
    /// `sendEnd` ends the body. Both are called on `eventLoop`, never after the end.
    init(eventLoop: any EventLoop, sendPart: @escaping (ByteBuffer, (@Sendable () -> Void)?) -> Void,
         sendEnd: @escaping () -> Void) {
        self.eventLoop = eventLoop
        self.sendPart = sendPart
        self.sendEnd = sendEnd
    }

    /// An HTTP/1.1 body on `channel` (behind NIOHTTP1's response encoder); `ended` runs on the
    /// event loop once the last chunk was written.
    static func http1(channel: any Channel, ended: @escaping @Sendable () -> Void) -> HTTP1BodyWriter {
        HTTP1BodyWriter(eventLoop: channel.eventLoop, sendPart: { bytes, written in
            let done = channel.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(bytes))))
            if let written { done.whenComplete { _ in written() } }
        }, sendEnd: {
            channel.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in ended() }
        })
    }

    /// Sends `bytes` as one part (flushed). `written` runs on the event loop once the bytes
    /// were handed on or could not be (the connection closed).
    public func write(_ bytes: ByteBuffer, written: (@Sendable () -> Void)? = nil) {
        onLoop { [self] in
            guard !finished else { written?(); return }
            sendPart(bytes, written)
        }
    }

    /// Ends the body. Only the first call counts.
    public func finish() {
        onLoop { [self] in
            guard !finished else { return }
            finished = true
            onClose = nil
            sendEnd()
        }
    }

    /// Sets the callback run (once, on the event loop) if the connection or stream closes
    /// before `finish`; runs it now if that already happened.
    public func setOnClose(_ callback: @escaping @Sendable () -> Void) {
        onLoop { [self] in
            if closed { return callback() }
            if finished { return }
            onClose = callback
        }
    }

    /// The connection or stream closed (on the event loop).
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

extension ServerCall {
    /// Starts `stream` as the body of a plain HTTP/2 response (on the event loop, after
    /// `respondPlain` submitted the head): each part is queued as DATA, the end of the body
    /// ends the stream. A part counts as written once HTTP/2 took all its bytes (the peer's
    /// flow-control window paces the producer).
    func startPlainBodyStream(_ stream: HTTP1BodyStream) {
        plainStreamOpen = true
        let drain = PlainBodyDrain()
        observer = drain
        let writer = HTTP1BodyWriter(eventLoop: eventLoop, sendPart: { [self] bytes, written in
            guard !closed, bytes.readableBytes > 0 else { written?(); return }
            pending.append(bytes)
            connection?.queuedResponseBytes += bytes.readableBytes
            if let written { drain.add(bytes.readableBytes, written) }
            resumePlainData()
        }, sendEnd: { [self] in
            plainStreamOpen = false
            plainBodyWriter = nil
            if !closed { resumePlainData() }
        })
        plainBodyWriter = writer
        stream.start(writer)
    }

    private func resumePlainData() {
        guard let connection else { return }
        if deferred {
            deferred = false
            connection.resumeData(self)
        }
        connection.scheduleFlush()
    }
}

/// The `written` callbacks of a streamed plain HTTP/2 body, run in order as HTTP/2 takes the
/// bytes of their parts (reported through the call's observer). On the event loop only.
final class PlainBodyDrain: CallObserver {
    private var waiting: [(bytes: Int, written: @Sendable () -> Void)] = []
    private var first = 0

    func add(_ bytes: Int, _ written: @escaping @Sendable () -> Void) {
        waiting.append((bytes, written))
    }

    func drained(bytes: Int) -> (@Sendable () -> Void)? {
        var left = bytes
        var ready: [@Sendable () -> Void] = []
        while first < waiting.count, left > 0 {
            if waiting[first].bytes <= left {
                left -= waiting[first].bytes
                ready.append(waiting[first].written)
                first += 1
            } else {
                waiting[first].bytes -= left
                left = 0
            }
        }
        if first == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            first = 0
        }
        if ready.isEmpty { return nil }
        let callbacks = ready
        return { for callback in callbacks { callback() } }
    }

    /// The stream closed with parts unsent: their bytes will never be taken.
    func cancelled() {
        let rest = waiting[first...].map(\.written)
        waiting = []
        first = 0
        for callback in rest { callback() }
    }
}
