import NIOConcurrencyHelpers
import NIOCore
import SwiftProtobuf

/// The response side of a server-streaming or bidirectional-streaming call.
///
/// Thread-safety: every method may be called from any thread; messages are written in the
/// order `send` was called (from one thread) and after a `finish` nothing more is sent.
/// Calls made on `context.eventLoop` write without a thread hop.
///
/// Backpressure: `pendingBytes` counts encoded bytes handed to `send` that HTTP/2 has not yet
/// taken (the peer's flow-control window or a slow socket hold them back). When it rises above
/// the server's `streamHighWatermark`, `isWritable` turns false; the `onWritable` callback runs
/// (on the event loop) once it falls to `streamLowWatermark` again. Producers that can fall
/// behind (a watch hub) should stop sending while `isWritable` is false.
public final class ServerStream<Response: SwiftProtobuf.Message>: Sendable {
    let call: any CallSink
    /// The call this stream answers.
    public let context: CallContext
    private let state: NIOLockedValueBox<StreamSharedState>

    init(call: any CallSink, context: CallContext) {
        self.call = call
        self.context = context
        self.state = NIOLockedValueBox(StreamSharedState())
        call.observer = self
    }

    /// Queues `message`. Ignored after `finish` or cancellation.
    public func send(_ message: Response) {
        let bytes: ByteBuffer
        do {
            bytes = try message.grpcFramed()
        } catch {
            finish(GRPCStatus(.internalError, "grpc: error while marshaling: \(error)"))
            return
        }
        let accepted = state.withLockedValue { s -> Bool in
            if s.finished || s.cancelled { return false }
            s.pendingBytes += bytes.readableBytes
            if s.pendingBytes > call.highWatermark { s.aboveHighWatermark = true }
            return true
        }
        if accepted { call.enqueue(message: bytes) }
    }

    /// Queues one message whose encoding is `message`'s followed by the bytes of `sharedTail`,
    /// which must be whole encoded fields of `Response` (e.g. records of a repeated field,
    /// encoded once and sent on many streams: protobuf reads fields in any order, a repeated
    /// field's records append). Only `message` is encoded here; the tail's buffers are queued as
    /// they are, their storage shared with the caller and every other stream they went to, and
    /// read from there into HTTP/2's DATA frames. `pendingBytes` counts them in full.
    /// Ignored after `finish` or cancellation.
    public func send(_ message: Response, sharedTail: [ByteBuffer]) {
        let tailBytes = sharedTail.reduce(0) { $0 &+ $1.readableBytes }
        let head: ByteBuffer
        do {
            head = try message.grpcFramed(tailBytes: tailBytes)
        } catch {
            finish(GRPCStatus(.internalError, "grpc: error while marshaling: \(error)"))
            return
        }
        let accepted = state.withLockedValue { s -> Bool in
            if s.finished || s.cancelled { return false }
            s.pendingBytes += head.readableBytes + tailBytes
            if s.pendingBytes > call.highWatermark { s.aboveHighWatermark = true }
            return true
        }
        if accepted { call.enqueue(message: head, tail: sharedTail) }
    }

    /// Ends the call with `status` (trailers). Only the first `finish` counts.
    public func finish(_ status: GRPCStatus = .ok) {
        let first = state.withLockedValue { s -> Bool in
            if s.finished { return false }
            s.finished = true
            return true
        }
        if first { call.finish(status) }
    }

    /// Ends the call with `error`'s status (`GRPCStatus`, else UNKNOWN).
    public func finish(error: any Error) { finish(GRPCStatus(from: error)) }

    /// Bytes queued by `send` and not yet handed to HTTP/2.
    public var pendingBytes: Int { state.withLockedValue { $0.pendingBytes } }

    /// False while `pendingBytes` is above the high watermark (see the type's documentation).
    public var isWritable: Bool { state.withLockedValue { !$0.aboveHighWatermark } }

    /// True once the client reset the stream or the connection closed before `finish`.
    public var isCancelled: Bool { state.withLockedValue { $0.cancelled } }

    /// Sets the callback run (once, on the event loop) when the client resets the stream or the
    /// connection closes before the call finished. Runs immediately if that already happened.
    public func setOnCancel(_ callback: @escaping @Sendable () -> Void) {
        let runNow = state.withLockedValue { s -> Bool in
            if s.cancelled { return true }
            s.onCancel = callback
            return false
        }
        if runNow { callback() }
    }

    /// Sets the callback run on the event loop each time `pendingBytes` falls back to the low
    /// watermark after having exceeded the high watermark.
    public func setOnWritable(_ callback: @escaping @Sendable () -> Void) {
        state.withLockedValue { $0.onWritable = callback }
    }
}

struct StreamSharedState {
    var pendingBytes = 0
    var aboveHighWatermark = false
    var finished = false
    var cancelled = false
    var onCancel: (@Sendable () -> Void)?
    var onWritable: (@Sendable () -> Void)?
}

extension ServerStream: CallObserver {
    func drained(bytes: Int) -> (@Sendable () -> Void)? {
        state.withLockedValue { s -> (@Sendable () -> Void)? in
            s.pendingBytes -= bytes
            if s.aboveHighWatermark && s.pendingBytes <= call.lowWatermark {
                s.aboveHighWatermark = false
                return s.onWritable
            }
            return nil
        }
    }

    func cancelled() {
        let callback = state.withLockedValue { s -> (@Sendable () -> Void)? in
            if s.cancelled || s.finished { return nil }
            s.cancelled = true
            defer { s.onCancel = nil; s.onWritable = nil }
            return s.onCancel
        }
        callback?()
    }
}

/// Callbacks a bidirectional-streaming handler returns for the request side of its call.
/// Both run on the call's event loop, in order; `onEnd` runs once, after the last message,
/// when the client half-closes. Neither runs after the call was cancelled or finished.
public struct BidiInbound<Request: SwiftProtobuf.Message>: Sendable {
    public var onMessage: @Sendable (Request) -> Void
    public var onEnd: @Sendable () -> Void

    public init(onMessage: @escaping @Sendable (Request) -> Void,
                onEnd: @escaping @Sendable () -> Void = {}) {
        self.onMessage = onMessage
        self.onEnd = onEnd
    }
}
