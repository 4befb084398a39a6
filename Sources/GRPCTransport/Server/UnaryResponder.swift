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

    /// Ends the call with status OK and a response the caller serializes itself: `serialize`
    /// gets exactly `serializedSize` bytes to fill with the message's protobuf encoding (for a
    /// large response built straight from its source, without an intermediate message). The
    /// bytes go out as they are: the caller owns their correctness. A size of 2 GiB or more
    /// (protobuf's limit, as `succeed(_:)` enforces it) ends the call with INTERNAL.
    public func succeed(serializedSize: Int, serialize: (UnsafeMutableRawBufferPointer) -> Void) {
        if call.hasEnded { return }
        guard serializedSize >= 0, serializedSize < 0x7fff_ffff else {
            call.finish(GRPCStatus(.internalError, "grpc: error while marshaling: message of \(serializedSize) bytes"))
            return
        }
        var buffer = ByteBufferAllocator().buffer(capacity: serializedSize + 5)
        buffer.writeInteger(UInt8(0))
        buffer.writeInteger(UInt32(serializedSize))
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: serializedSize) { out in
            serialize(UnsafeMutableRawBufferPointer(rebasing: out[..<serializedSize]))
            return serializedSize
        }
        call.respond(message: buffer)
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
