import NIOCore
import SwiftProtobuf

/// A response message that parses its own wire bytes rather than through swift-protobuf's
/// decoder: for a reader that needs only a digest of large, numerous messages (a benchmark's
/// watch consumer), without materialising each repeated field. Streaming calls use
/// `init(grpcPayload:)` when their response type conforms.
public protocol GRPCDirectDecodable: SwiftProtobuf.Message {
    /// Parses one received message (`payload`: the protobuf bytes, without the gRPC header).
    init(grpcPayload payload: ByteBuffer) throws
}
