import NIOCore

/// What a handler knows about the call it serves. Immutable; safe to pass between threads.
public struct CallContext: Sendable {
    /// The method path, `/package.Service/Method`.
    public let method: String
    /// Request metadata: custom (non-pseudo, non-gRPC-reserved) request headers with lowercased
    /// names. A header sent more than once has its values joined with `,`.
    /// etcd's auth token is `metadata["token"]`.
    public let metadata: [String: String]
    /// The client's deadline from `grpc-timeout`, if it sent one. When it passes before the
    /// handler finished, the server ends the call with DEADLINE_EXCEEDED ("context deadline
    /// exceeded"), streaming handlers see cancellation, and later completions are ignored.
    /// Handlers with long work should check it (or cancellation) and stop early.
    public let deadline: NIODeadline?
    /// The event loop of the call's connection. Completing responders and sending on streams
    /// from this loop writes without a thread hop.
    public let eventLoop: any EventLoop
    /// The common name (CN) of the verified TLS client certificate, if the client presented one.
    public let peerCommonName: String?
    /// The client's address, when known.
    public let remoteAddress: SocketAddress?
    /// Runs tasks on `eventLoop`, batching those posted from another thread before the loop gets
    /// to them (shared by the loop's connections): complete calls from a writer thread through
    /// it, so that a burst of completions costs one wake-up and one write per connection.
    public let inbox: LoopInbox

    public init(method: String, metadata: [String: String], deadline: NIODeadline?,
                eventLoop: any EventLoop, peerCommonName: String?, remoteAddress: SocketAddress?,
                inbox: LoopInbox? = nil) {
        self.method = method
        self.metadata = metadata
        self.deadline = deadline
        self.eventLoop = eventLoop
        self.peerCommonName = peerCommonName
        self.remoteAddress = remoteAddress
        self.inbox = inbox ?? LoopInbox(eventLoop: eventLoop)
    }
}
