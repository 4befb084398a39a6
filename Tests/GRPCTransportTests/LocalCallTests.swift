import GRPCTransport
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SwiftProtobuf
import XCTest

/// `Service.startLocalCall`: the registered handlers run in process with the same decoding and
/// responder/stream contracts as calls on a connection.
final class LocalCallTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!
    private let observations = Observations()

    override func setUp() { group = MultiThreadedEventLoopGroup(numberOfThreads: 1) }
    override func tearDown() { try? group.syncShutdownGracefully() }

    /// Runs `method` with `requests` (then half-close); returns the responses and the status.
    private func run<M: SwiftProtobuf.Message>(_ method: String, _ requests: [ByteBuffer], as: M.Type,
                                                end: Bool = true) throws -> ([M], GRPCStatus) {
        let loop = group.next()
        let messages = NIOLockedValueBox<[ByteBuffer]>([])
        let done = loop.makePromise(of: GRPCStatus.self)
        let context = CallContext(method: "/test.Echo/\(method)", metadata: ["token": "t"], deadline: nil,
                                  eventLoop: loop, peerCommonName: nil, remoteAddress: nil)
        let call = try XCTUnwrap(makeTestService(observations).startLocalCall(method, context: context,
            onMessage: { bytes, written in
                XCTAssertTrue(loop.inEventLoop)
                messages.withLockedValue { $0.append(bytes) }
                written()
            }, onEnd: { done.succeed($0) }))
        for r in requests { call.send(r) }
        if end { call.end() }
        let status = try done.futureResult.wait()
        let decoded = try messages.withLockedValue { $0 }.map { try M(serializedBytes: Array($0.readableBytesView)) }
        return (decoded, status)
    }

    private func bytes(_ message: some SwiftProtobuf.Message) throws -> ByteBuffer {
        ByteBuffer(bytes: try message.serializedBytes() as [UInt8])
    }

    func testUnaryAnswersAndFailsAsOverHTTP2() throws {
        let (answers, status) = try run("Unary", [bytes(StringValue("hi"))], as: StringValue.self)
        XCTAssertEqual(answers.map(\.value), ["hi"])
        XCTAssertEqual(status.code, .ok)
        let (meta, _) = try run("Unary", [bytes(StringValue("meta:token"))], as: StringValue.self)
        XCTAssertEqual(meta.map(\.value), ["t"])
        let (none, failed) = try run("Unary", [bytes(StringValue("fail:5:not here"))], as: StringValue.self)
        XCTAssertEqual(none.count, 0)
        XCTAssertEqual(failed.code, .notFound)
        XCTAssertEqual(failed.message, "not here")
    }

    func testUndecodableAndMissingRequestsEndWithInternal() throws {
        let (_, garbage) = try run("Unary", [ByteBuffer(bytes: [0xFF, 0xFF, 0xFF])], as: StringValue.self)
        XCTAssertEqual(garbage.code, .internalError)
        XCTAssertTrue(garbage.message.hasPrefix("grpc: error unmarshalling request"), garbage.message)
        let (_, missing) = try run("Unary", [], as: StringValue.self)
        XCTAssertEqual(missing.code, .internalError)
        let (_, twice) = try run("Delayed", [bytes(UInt32Value(50)), bytes(UInt32Value(1))], as: UInt32Value.self)
        XCTAssertEqual(twice.code, .internalError)
    }

    func testStreamsDeliverInOrderThenEnd() throws {
        let (counted, status) = try run("Count", [bytes(UInt32Value(3))], as: UInt32Value.self)
        XCTAssertEqual(counted.map(\.value), [0, 1, 2])
        XCTAssertEqual(status.code, .ok)
        let (upper, end) = try run("Upper", [bytes(StringValue("a")), bytes(StringValue("b"))], as: StringValue.self)
        XCTAssertEqual(upper.map(\.value), ["A", "B"])
        XCTAssertEqual(end.code, .ok)
    }

    func testCancelReachesTheHandlerAndEndsNothing() throws {
        let loop = group.next()
        let context = CallContext(method: "/test.Echo/Count", metadata: [:], deadline: nil, eventLoop: loop,
                                  peerCommonName: nil, remoteAddress: nil)
        let ended = NIOLockedValueBox(false)
        let call = try XCTUnwrap(makeTestService(observations).startLocalCall("Count", context: context,
            onMessage: { _, written in written() }, onEnd: { _ in ended.withLockedValue { $0 = true } }))
        call.send(try bytes(UInt32Value(0)))   // streams until cancelled
        call.cancel()
        try loop.submit {}.wait()
        XCTAssertEqual(observations.cancelledStreams.withLockedValue { $0 }, 1)
        XCTAssertFalse(ended.withLockedValue { $0 })
        XCTAssertNil(makeTestService(observations).startLocalCall("Nope", context: context,
            onMessage: { _, _ in }, onEnd: { _ in }))
    }
}
