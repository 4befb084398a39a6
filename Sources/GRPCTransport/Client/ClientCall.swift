import CNghttp2
import NIOCore

/// One gRPC call (HTTP/2 stream) on a client connection. Loop-confined: all state is touched
/// on the connection's event loop only (which makes `@unchecked Sendable` sound).
final class ClientCall: @unchecked Sendable {
    let path: String
    let metadata: [(String, String)]
    let timeout: TimeAmount?
    let onMessage: (ByteBuffer) -> Void
    let onClose: (GRPCStatus) -> Void

    var streamID: Int32 = -1
    weak var connection: ClientConnectionHandler?
    var pending = PendingData()
    var inputFinished = false
    var deferred = false
    var closed = false
    var deadlineTask: Scheduled<Void>?

    // Response.
    var httpStatus: Int?
    var grpcStatus: Int?
    var grpcMessage: String?
    var deframer = MessageDeframer()
    var maxMessageSize = Int.max
    var localFailure: GRPCStatus?

    init(path: String, metadata: [(String, String)], timeout: TimeAmount?,
         onMessage: @escaping (ByteBuffer) -> Void, onClose: @escaping (GRPCStatus) -> Void) {
        self.path = path
        self.metadata = metadata
        self.timeout = timeout
        self.onMessage = onMessage
        self.onClose = onClose
    }

    func append(_ framed: ByteBuffer) {
        pending.append(framed)
    }

    /// Fills a request DATA frame (data provider read callback).
    func readData(into buf: UnsafeMutablePointer<UInt8>, length: Int, flags: UnsafeMutablePointer<UInt32>) -> Int {
        let count = pending.read(into: buf, count: length)
        if pending.readableBytes == 0 {
            if inputFinished {
                flags.pointee |= H2.eof
            } else if count == 0 {
                deferred = true
                return H2.deferred
            }
        }
        return count
    }

    /// Delivers complete response messages.
    func deliverMessages() {
        while !closed {
            do {
                guard let message = try deframer.next(maxMessageSize: maxMessageSize) else { return }
                onMessage(message)
            } catch MessageDeframer.Failure.tooLarge(let size) {
                localFailure = GRPCStatus(.resourceExhausted,
                    "grpc: received message larger than max (\(size) vs. \(maxMessageSize))")
                connection?.reset(self, errorCode: H2.cancel)
                return
            } catch {
                localFailure = GRPCStatus(.internalError, "grpc: compressed response messages are not supported")
                connection?.reset(self, errorCode: H2.cancel)
                return
            }
        }
    }

    /// The stream closed: report the final status once.
    func finish(errorCode: UInt32) {
        guard !closed else { return }
        closed = true
        deadlineTask?.cancel()
        let status: GRPCStatus
        if let localFailure {
            status = localFailure
        } else if let code = grpcStatus {
            status = GRPCStatus(.init(rawValue: code), grpcMessage.map(GRPCStatus.percentDecode) ?? "")
        } else if errorCode != H2.noError {
            status = GRPCStatus(errorCode == UInt32(NGHTTP2_REFUSED_STREAM.rawValue) ? .unavailable : .cancelled,
                                "stream terminated by RST_STREAM with error code: \(errorCode)")
        } else if let http = httpStatus, http != 200 {
            status = GRPCStatus(http == 404 ? .unimplemented : .unknown, "unexpected HTTP status code \(http)")
        } else {
            status = GRPCStatus(.internalError, "server closed the stream without sending trailers")
        }
        onClose(status)
    }
}
