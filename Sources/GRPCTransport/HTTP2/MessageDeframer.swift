import NIOCore

/// Splits a gRPC message stream (1-byte compressed flag, 4-byte big-endian length, payload)
/// into messages. Bytes are appended as DATA arrives; `next` returns whole messages.
struct MessageDeframer {
    enum Failure: Error {
        /// The length prefix announces a message larger than the limit.
        case tooLarge(Int)
        /// The compressed flag is set.
        case compressed
    }

    private(set) var buffer = ByteBuffer()

    var isEmpty: Bool { buffer.readableBytes == 0 }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        buffer.writeBytes(bytes)
    }

    /// The next complete message, nil if more bytes are needed. Throws when the next message's
    /// header is unacceptable (the stream should then be failed; the deframer is unusable).
    mutating func next(maxMessageSize: Int) throws -> ByteBuffer? {
        guard buffer.readableBytes >= 5,
              let flag = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt32.self)
        else { return nil }
        if Int(length) > maxMessageSize { throw Failure.tooLarge(Int(length)) }
        if flag & 1 != 0 { throw Failure.compressed }
        guard buffer.readableBytes >= 5 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 5)
        let message = buffer.readSlice(length: Int(length))!
        if buffer.readableBytes == 0 {
            // Drop our reference to the storage only once empty: the slice shares it.
            buffer = ByteBuffer()
        }
        return message
    }
}

extension ByteBuffer {
    /// Appends `message` framed as a gRPC message (uncompressed).
    mutating func writeGRPCMessage(_ message: [UInt8]) {
        writeInteger(UInt8(0))
        writeInteger(UInt32(message.count))
        writeBytes(message)
    }
}
