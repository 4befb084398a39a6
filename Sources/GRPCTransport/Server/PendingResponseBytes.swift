import NIOCore

/// The response bytes a call has queued for its DATA frames: framed messages in order, each
/// kept as it was handed over (appending copies nothing) and released as soon as HTTP/2 has
/// taken all of it.
///
/// (One contiguous buffer with the messages appended, as before, copied every message and held
/// up to 1 MiB of bytes already sent, in a buffer grown by doubling, for as long as anything
/// stayed queued behind them: 1,000 watch streams that lagged peaked at about 0.9 GiB.)
struct PendingResponseBytes {
    private var buffers = CircularBuffer<ByteBuffer>()
    /// Bytes queued and not yet taken.
    private(set) var readableBytes = 0

    init() {}

    init(_ buffer: ByteBuffer) {
        append(buffer)
    }

    mutating func append(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0 else { return }
        readableBytes += buffer.readableBytes
        buffers.append(buffer)
    }

    /// Drops everything queued.
    mutating func clear() {
        buffers.removeAll()
        readableBytes = 0
    }

    /// Moves up to `count` bytes from the front into `destination`; returns how many it moved.
    mutating func read(into destination: UnsafeMutablePointer<UInt8>, count: Int) -> Int {
        var done = 0
        while done < count, var head = buffers.first {
            let n = min(count - done, head.readableBytes)
            head.withUnsafeReadableBytes { src in
                (destination + done).update(from: src.baseAddress!.assumingMemoryBound(to: UInt8.self), count: n)
            }
            head.moveReaderIndex(forwardBy: n)
            done += n
            if head.readableBytes == 0 {
                buffers.removeFirst()
            } else {
                buffers[buffers.startIndex] = head
            }
        }
        readableBytes -= done
        return done
    }
}
