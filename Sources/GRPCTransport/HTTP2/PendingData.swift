import NIOCore

/// The bytes a stream has queued for its DATA frames (responses on the server, requests on the
/// client): framed messages in order, each kept as it was handed over (appending copies
/// nothing) and released as soon as HTTP/2 has taken all of it, so a stream that always has
/// something queued holds only what is still unsent. A single message (every unary call)
/// needs no queue storage.
struct PendingData {
    /// Shared by every empty queue (no storage allocated per stream).
    private static let empty = ByteBuffer()
    /// The message being sent (its unsent bytes).
    private var head = PendingData.empty
    /// The messages behind `head`, created when a second one waits.
    private var queue: CircularBuffer<ByteBuffer>?
    /// Bytes queued and not yet taken.
    private(set) var readableBytes = 0

    init() {}

    init(_ buffer: ByteBuffer) {
        append(buffer)
    }

    mutating func append(_ buffer: ByteBuffer) {
        guard buffer.readableBytes > 0 else { return }
        if readableBytes == 0 {
            head = buffer
        } else {
            queue = queue ?? CircularBuffer()
            queue!.append(buffer)
        }
        readableBytes += buffer.readableBytes
    }

    /// Drops everything queued.
    mutating func clear() {
        head = Self.empty
        queue?.removeAll(keepingCapacity: true)
        readableBytes = 0
    }

    /// Moves up to `count` bytes from the front into `destination`; returns how many it moved.
    mutating func read(into destination: UnsafeMutablePointer<UInt8>, count: Int) -> Int {
        var done = 0
        while done < count {
            if head.readableBytes == 0 {
                guard let next = queue?.popFirst() else { break }
                head = next
            }
            let n = min(count - done, head.readableBytes)
            head.withUnsafeReadableBytes { src in
                (destination + done).update(from: src.baseAddress!.assumingMemoryBound(to: UInt8.self), count: n)
            }
            head.moveReaderIndex(forwardBy: n)
            done += n
        }
        if head.readableBytes == 0 && head.capacity > 0 { head = Self.empty }  // let the sent one go
        readableBytes -= done
        return done
    }
}
