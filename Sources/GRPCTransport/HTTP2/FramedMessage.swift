import NIOCore
import SwiftProtobuf

/// Bytes backed by a `ByteBuffer`, so swift-protobuf can encode into and decode from NIO
/// buffers without intermediate arrays.
///
/// Encoding (`try message.serializedBytes() as FramedMessage`) leaves five bytes in front of
/// the payload for the gRPC message header; `framed` fills them in.
struct FramedMessage: SwiftProtobufContiguousBytes {
    private(set) var buffer: ByteBuffer
    /// What an encoded message holds after `takeFramed` (shared, so taking allocates nothing).
    private static let taken = ByteBuffer()

    init(repeating: UInt8, count: Int) {
        buffer = ByteBufferAllocator().buffer(capacity: count + 5)
        buffer.writeRepeatingByte(0, count: 5)
        buffer.writeRepeatingByte(repeating, count: count)
        buffer.moveReaderIndex(forwardBy: 5)
    }

    init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        buffer = ByteBufferAllocator().buffer(capacity: 5)
        buffer.writeRepeatingByte(0, count: 5)
        buffer.writeBytes(Array(sequence))
        buffer.moveReaderIndex(forwardBy: 5)
    }

    /// Wraps received message bytes for decoding.
    init(received: ByteBuffer) {
        buffer = received
    }

    var count: Int { buffer.readableBytes }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeReadableBytes(body)
    }

    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeMutableReadableBytes(body)
    }

    /// The message with its gRPC header (uncompressed, big-endian length), written in place:
    /// `self` gives up its buffer first, so writing the header copies nothing (a buffer still
    /// shared would be copied whole, at up to twice its size, for every message sent).
    mutating func takeFramed() -> ByteBuffer {
        var out = buffer
        buffer = Self.taken
        let length = UInt32(out.readableBytes)
        out.moveReaderIndex(to: out.readerIndex - 5)
        out.setInteger(UInt8(0), at: out.readerIndex)
        out.setInteger(length, at: out.readerIndex + 1)
        return out
    }

    /// `takeFramed` for a message whose encoding continues in `tailBytes` more bytes, queued
    /// right behind it in other buffers (the header's length counts them). Nil when the
    /// length does not fit gRPC's 32-bit field.
    mutating func takeFramed(tailBytes: Int) -> ByteBuffer? {
        let (total, overflow) = buffer.readableBytes.addingReportingOverflow(tailBytes)
        guard !overflow, tailBytes >= 0, let length = UInt32(exactly: total) else { return nil }
        var out = takeFramed()
        out.setInteger(length, at: out.readerIndex + 1)
        return out
    }
}

/// A message too large for gRPC's 32-bit length prefix.
struct MessageTooLarge: Error, CustomStringConvertible {
    var description: String { "message larger than 4 GiB" }
}

extension SwiftProtobuf.Message {
    /// The message serialized with its gRPC message header.
    func grpcFramed() throws -> ByteBuffer {
        var encoded: FramedMessage = try serializedBytes()
        return encoded.takeFramed()
    }

    /// The message serialized with a gRPC message header whose length also counts `tailBytes`
    /// more bytes of the message, which the caller queues right behind it.
    func grpcFramed(tailBytes: Int) throws -> ByteBuffer {
        var encoded: FramedMessage = try serializedBytes()
        guard let framed = encoded.takeFramed(tailBytes: tailBytes) else { throw MessageTooLarge() }
        return framed
    }
}
