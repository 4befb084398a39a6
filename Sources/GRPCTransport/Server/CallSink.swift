import NIOCore

/// What method handlers (through `UnaryResponder`, `ServerStream` and `ServiceMethod`) need of
/// the call they answer: an HTTP/2 stream (`ServerCall`) or a call made in process
/// (`LocalCall`, e.g. by an HTTP/JSON gateway). The contract is `ServerCall`'s: the entry
/// points `respond`, `enqueue` and `finish` are callable from any thread, everything else runs
/// on `context.eventLoop`; the first completion ends the call and later ones are ignored.
protocol CallSink: AnyObject, Sendable {
    /// The call's context; set before any handler runs.
    var context: CallContext! { get }
    var highWatermark: Int { get }
    var lowWatermark: Int { get }
    /// The streaming response side to tell about drained bytes and cancellation (on the loop).
    var observer: CallObserver? { get set }
    /// True once the call ended. Callable from any thread.
    var hasEnded: Bool { get }
    /// Ends the call with `message` (gRPC-framed) and status OK.
    func respond(message: ByteBuffer)
    /// Queues a streaming response `message` (gRPC-framed).
    func enqueue(message: ByteBuffer)
    /// Queues a streaming response made of `message` (gRPC-framed, its length counting the
    /// tail) and `tail`, as one message: nothing else is queued between them. The tail's
    /// buffers are kept as they are (shared, not copied).
    func enqueue(message: ByteBuffer, tail: [ByteBuffer])
    /// Ends the call with `status`.
    func finish(_ status: GRPCStatus)
    /// The handler is being invoked (on the event loop).
    func noteStarted()
    /// A request message of `messageBytes` (unframed) was decoded (on the event loop).
    func noteReceived(messageBytes: Int)
}

extension CallSink {
    func noteReceived(messageBytes: Int) {}
}

extension ServerCall: CallSink {
    func noteReceived(messageBytes: Int) {
        monitor?.received(messageBytes: messageBytes)
    }
}
