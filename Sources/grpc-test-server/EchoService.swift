import Dispatch
import FoundationEssentials
import GRPCTransport
import NIOConcurrencyHelpers
import NIOCore

typealias EchoRequest = Rusd_Transporttest_EchoRequest
typealias EchoResponse = Rusd_Transporttest_EchoResponse

/// `rusd.transporttest.Echo`: the behaviours the compatibility tests exercise.
func makeEchoService() -> Service {
    Service(name: "rusd.transporttest.Echo", methods: [
        .unary("Unary") { (request: EchoRequest, context, responder: UnaryResponder<EchoResponse>) in
            if request.neverFinish { return }  // the deadline or the client ends the call
            let answer = { @Sendable in
                if request.failCode != 0 {
                    responder.fail(GRPCStatus(.init(rawValue: Int(request.failCode)), request.failMessage))
                } else {
                    responder.succeed(echo(request, context, index: 0))
                }
            }
            if request.delayMs > 0 {
                // Answer from another thread, as a write waiting for fsync would.
                DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(request.delayMs)), execute: answer)
            } else {
                answer()
            }
        },
        .serverStreaming("ServerStream") { (request: EchoRequest, stream: ServerStream<EchoResponse>) in
            stream.setOnCancel { cancelledStreams.withLockedValue { $0 += 1 } }
            StreamProducer(request: request, stream: stream).run()
        },
        .bidirectionalStreaming("Bidi") { (stream: ServerStream<EchoResponse>) in
            stream.setOnCancel { cancelledStreams.withLockedValue { $0 += 1 } }
            let counter = LoopCounter()
            return BidiInbound(
                onMessage: { (request: EchoRequest) in
                    if request.failCode != 0 {
                        stream.finish(GRPCStatus(.init(rawValue: Int(request.failCode)), request.failMessage))
                        return
                    }
                    stream.send(echo(request, stream.context, index: counter.next()))
                },
                onEnd: { stream.finish() })
        },
    ])
}

private func echo(_ request: EchoRequest, _ context: CallContext, index: UInt32) -> EchoResponse {
    var response = EchoResponse()
    response.payload = request.payload
    response.metadata = context.metadata
    response.index = index
    response.peerCommonName = context.peerCommonName ?? ""
    response.cancelledStreams = cancelledStreams.withLockedValue { $0 }
    if let deadline = context.deadline {
        response.deadlineRemainingMs = (deadline - .now()).nanoseconds / 1_000_000
    } else {
        response.deadlineRemainingMs = -1
    }
    return response
}

/// Streaming handlers that have seen cancellation, reported in every `EchoResponse`.
private let cancelledStreams = NIOLockedValueBox<UInt64>(0)

/// Counts on the event loop (bidi callbacks run there, in order).
private final class LoopCounter: @unchecked Sendable {
    private var value: UInt32 = 0
    func next() -> UInt32 {
        defer { value += 1 }
        return value
    }
}

/// Sends `response_count` messages of `response_size` bytes, pausing while the stream is not
/// writable (so a 50 MB response never sits in memory at once).
private final class StreamProducer: @unchecked Sendable {
    private let stream: ServerStream<EchoResponse>
    private let count: UInt32
    private let neverFinish: Bool
    private let payload: Data
    private var sent: UInt32 = 0

    init(request: EchoRequest, stream: ServerStream<EchoResponse>) {
        self.stream = stream
        self.count = request.responseCount
        self.neverFinish = request.neverFinish
        self.payload = Data(repeating: UInt8(ascii: "x"), count: Int(request.responseSize))
    }

    /// Runs on the event loop (handler and onWritable callbacks both do).
    func run() {
        stream.setOnWritable { self.pump() }
        pump()
    }

    private func pump() {
        while sent < count {
            if stream.isCancelled { return }
            if !stream.isWritable { return }  // onWritable resumes
            var response = EchoResponse()
            response.payload = payload
            response.index = sent
            sent += 1
            stream.send(response)
        }
        if !neverFinish { stream.finish() }
    }
}
