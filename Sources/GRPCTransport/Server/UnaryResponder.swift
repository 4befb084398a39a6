import NIOCore
import SwiftProtobuf

/// Completes a unary call. Complete it exactly once (`succeed` or `fail`); later completions
/// are ignored, and so are completions after the call ended without the handler (its
/// deadline passed, the client cancelled or the connection closed).
///
/// Thread-safety: callable from any thread. Called on the call's event loop
/// (`CallContext.eventLoop`, e.g. synchronously inside the handler) it encodes and writes
/// without a thread hop; called elsewhere it encodes on the calling thread and hops to the
/// event loop once.
public struct UnaryResponder<Response: SwiftProtobuf.Message>: Sendable {
    let call: any CallSink

    /// Ends the call with `response` and status OK.
    public func succeed(_ response: Response) {
        if call.hasEnded { return }  // e.g. past the deadline: skip the encoding too
        let bytes: ByteBuffer
        do {
            bytes = try response.grpcFramed()
        } catch {
            call.finish(GRPCStatus(.internalError, "grpc: error while marshaling: \(error)"))
            return
        }
        call.respond(message: bytes)
    }

    /// Ends the call with `error`'s status (`GRPCStatus`, else UNKNOWN).
    public func fail(_ error: any Error) {
        call.finish(GRPCStatus(from: error))
    }

    /// Ends the call with the result.
    public func complete(_ result: Result<Response, any Error>) {
        switch result {
        case .success(let response): succeed(response)
        case .failure(let error): fail(error)
        }
    }
}
