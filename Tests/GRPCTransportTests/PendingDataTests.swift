@testable import GRPCTransport
import NIOCore
import XCTest

final class PendingDataTests: XCTestCase {
    /// Reads in sizes that straddle message boundaries return the bytes in order, and the
    /// count of queued bytes follows.
    func testReadsAcrossMessageBoundariesInOrder() {
        var pending = PendingData()
        var expected: [UInt8] = []
        for (i, size) in [5, 1, 0, 300, 17, 4096].enumerated() {
            let message = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) }
            expected += message
            pending.append(ByteBuffer(bytes: message))
        }
        XCTAssertEqual(pending.readableBytes, expected.count)
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1000)
        for size in [3, 3, 250, 1000, 1, 1000, 1000, 1000, 1000] {
            let n = chunk.withUnsafeMutableBufferPointer { pending.read(into: $0.baseAddress!, count: size) }
            XCTAssertLessThanOrEqual(n, size)
            out += chunk[0..<n]
            XCTAssertEqual(pending.readableBytes, expected.count - out.count)
        }
        XCTAssertEqual(out, expected)
        XCTAssertEqual(chunk.withUnsafeMutableBufferPointer { pending.read(into: $0.baseAddress!, count: 10) }, 0)
    }

    /// A buffer is let go once it has been read entirely (only the caller's copy is left).
    func testReleasesAMessageOnceItWasReadEntirely() {
        var pending = PendingData()
        var first = ByteBuffer(bytes: [1, 2, 3, 4])
        pending.append(first)
        pending.append(ByteBuffer(bytes: [5, 6]))
        var chunk = [UInt8](repeating: 0, count: 8)
        XCTAssertEqual(chunk.withUnsafeMutableBufferPointer { pending.read(into: $0.baseAddress!, count: 4) }, 4)
        // Writing to our copy would copy the storage if the queue still held it.
        let before = first.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        first.setInteger(UInt8(9), at: first.readerIndex)
        let after = first.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        XCTAssertEqual(before, after, "the queue should no longer share the first message's storage")
        XCTAssertEqual(pending.readableBytes, 2)
        pending.clear()
        XCTAssertEqual(pending.readableBytes, 0)
    }
}
