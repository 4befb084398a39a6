@testable import GRPCTransport
import NIOCore
import NIOPosix
import SwiftProtobuf
import XCTest

/// `ServerStream.send(_:sharedTail:)`: a message whose tail (already-encoded fields) is queued
/// by reference on every stream it goes to, never copied per stream.
final class SharedTailTests: XCTestCase {
    /// Records what a `ServerStream` hands to its call.
    private final class RecordingCall: CallSink, @unchecked Sendable {
        let context: CallContext!
        let highWatermark = 64 << 10
        let lowWatermark = 16 << 10
        var observer: CallObserver?
        var hasEnded: Bool { false }
        /// Each queued message as the buffers it was handed over in.
        var messages: [[ByteBuffer]] = []
        var finished: GRPCStatus?

        init(loop: any EventLoop) {
            context = CallContext(method: "/test.Echo/Shared", metadata: [:], deadline: nil, eventLoop: loop,
                                  peerCommonName: nil, remoteAddress: nil)
        }

        func respond(message: ByteBuffer) { messages.append([message]) }
        func enqueue(message: ByteBuffer) { messages.append([message]) }
        func enqueue(message: ByteBuffer, tail: [ByteBuffer]) { messages.append([message] + tail) }
        func finish(_ status: GRPCStatus) { finished = status }
        func noteStarted() {}
    }

    private func address(_ b: ByteBuffer) -> UInt {
        b.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
    }

    /// Two streams get one tail: each queues its own head and the tail's very storage; the
    /// bytes of each message are one gRPC message that protobuf decodes as head + tail fields.
    func testTailIsSharedNotCopiedAndDecodesAsOneMessage() throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        // Records of FieldMask's repeated `paths` (field 1), encoded once.
        var tailMask = Google_Protobuf_FieldMask()
        tailMask.paths = ["a", String(repeating: "b", count: 300), "c"]
        let tail = ByteBuffer(bytes: try tailMask.serializedBytes() as [UInt8])
        let slice = try XCTUnwrap(tail.getSlice(at: tail.readerIndex + 3, length: tail.readableBytes - 3))  // "b..." and "c"
        let calls = [RecordingCall(loop: loop), RecordingCall(loop: loop)]
        for (i, call) in calls.enumerated() {
            let stream = ServerStream<Google_Protobuf_FieldMask>(call: call, context: call.context)
            var head = Google_Protobuf_FieldMask()
            head.paths = ["head\(i)"]
            stream.send(head, sharedTail: [slice])
            let parts = try XCTUnwrap(call.messages.first)
            XCTAssertEqual(parts.count, 2)
            XCTAssertEqual(address(parts[1]), address(slice), "the tail was copied")
            XCTAssertEqual(address(parts[1]), address(tail) + 3)
            var joined = ByteBuffer()
            for var p in parts { joined.writeBuffer(&p) }
            XCTAssertEqual(stream.pendingBytes, joined.readableBytes)
            let flag = joined.readInteger(as: UInt8.self)
            let length = joined.readInteger(as: UInt32.self)
            XCTAssertEqual(flag, 0)
            XCTAssertEqual(length.map { Int($0) }, joined.readableBytes)
            let decoded = try Google_Protobuf_FieldMask(serializedBytes: Array(joined.readableBytesView))
            XCTAssertEqual(decoded.paths, ["head\(i)", String(repeating: "b", count: 300), "c"])
            XCTAssertNil(call.finished)
        }
    }

    /// The tail counts toward the stream's backpressure like any queued bytes.
    func testTailCountsTowardTheHighWatermark() throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let call = RecordingCall(loop: loop)
        let stream = ServerStream<Google_Protobuf_FieldMask>(call: call, context: call.context)
        var big = Google_Protobuf_FieldMask()
        big.paths = [String(repeating: "x", count: 70_000)]
        let tail = ByteBuffer(bytes: try big.serializedBytes() as [UInt8])
        XCTAssertTrue(stream.isWritable)
        stream.send(Google_Protobuf_FieldMask(), sharedTail: [tail])
        XCTAssertEqual(stream.pendingBytes, 5 + tail.readableBytes)
        XCTAssertFalse(stream.isWritable)
    }
}
