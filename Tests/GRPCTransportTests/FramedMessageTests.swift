@testable import GRPCTransport
import NIOCore
import XCTest

final class FramedMessageTests: XCTestCase {
    /// The gRPC header goes into the five bytes left in front of the payload: same storage, no
    /// copy of the message (sent messages were copied whole, doubling the memory of a queue).
    func testFramingWritesTheHeaderInPlace() {
        var message = FramedMessage(repeating: 0x61, count: 70_000)
        let payload = message.withUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        let framed = message.takeFramed()
        framed.withUnsafeReadableBytes { bytes in
            XCTAssertEqual(UInt(bitPattern: bytes.baseAddress) + 5, payload, "the framed message was copied")
        }
        XCTAssertEqual(framed.readableBytes, 70_005)
        XCTAssertEqual(framed.getInteger(at: framed.readerIndex, as: UInt8.self), 0)
        XCTAssertEqual(framed.getInteger(at: framed.readerIndex + 1, as: UInt32.self), 70_000)
        XCTAssertEqual(framed.getBytes(at: framed.readerIndex + 5, length: 70_000), [UInt8](repeating: 0x61, count: 70_000))
        XCTAssertEqual(message.count, 0)
    }
}
