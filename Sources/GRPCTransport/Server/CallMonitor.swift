/// The shape of a gRPC method, as grpc-go names it (`grpc_type` in go-grpc-prometheus).
public enum GRPCMethodKind: String, Sendable, CaseIterable {
    case unary
    case clientStream = "client_stream"
    case serverStream = "server_stream"
    case bidiStream = "bidi_stream"
}

/// Observes the calls of a `GRPCServer` (set `GRPCServerConfiguration.callMonitor`), e.g. to
/// count them. The server asks once per registered method, when it is created, for that
/// method's `GRPCMethodMonitor`; calls to unknown services or methods are not observed.
public protocol GRPCCallMonitor: Sendable {
    /// The monitor of one method (`service` is the full name, e.g. "pkg.Service"), or nil to
    /// leave the method unobserved.
    func monitor(service: String, method: String, kind: GRPCMethodKind) -> (any GRPCMethodMonitor)?
}

/// Told about every call of one method, on the call's event loop, so it sits on the hot path:
/// implementations must be cheap and thread-safe (e.g. atomic counters), and must not block.
///
/// Contract: `started` is called when the handler is invoked (for unary and server-streaming
/// calls, after the request message decoded; for bidirectional calls, when the stream opens);
/// then `handled` exactly once with the status the call ended with (`.cancelled` when the
/// stream closed before the handler finished it, `.deadlineExceeded` when its `grpc-timeout`
/// deadline passed first). Calls that never reach the handler (decode
/// failures, oversized or missing requests) are not observed, as in grpc-go's interceptors.
///
/// Optional, with no-op defaults: `started(metadata:)` (instead of `started()`, with the call's
/// request metadata), `received(messageBytes:)` for each request message decoded and
/// `sent(messageBytes:)` for each response message queued (sizes without the 5-byte gRPC
/// message prefix, as grpc-go's codec sees them); `handled(_:seconds:)` (instead of
/// `handled(_:)`, with the seconds from `started` to the end: go-grpc-prometheus' handling time).
public protocol GRPCMethodMonitor: AnyObject, Sendable {
    func started()
    func started(metadata: [String: String])
    func handled(_ code: GRPCStatus.Code)
    func handled(_ code: GRPCStatus.Code, seconds: Double)
    func received(messageBytes: Int)
    func sent(messageBytes: Int)
}

extension GRPCMethodMonitor {
    public func started(metadata: [String: String]) { started() }
    public func handled(_ code: GRPCStatus.Code, seconds: Double) { handled(code) }
    public func received(messageBytes: Int) {}
    public func sent(messageBytes: Int) {}
}
