import XCTest
import EngineAPI
import Engines

/// What the `sqlite` engine promises beyond the shared suite (Sources/Engines/SQLite/README.md).
final class SQLiteEngineTests: XCTestCase {
    private var root = ""

    override func setUpWithError() throws {
        root = try PosixFiles.makeTemporaryDirectory(prefix: "rusd-sqlite")
    }

    override func tearDownWithError() throws {
        try? PosixFiles.removeTree(root)
    }

    /// `bytesWrittenSinceOpen` counts WAL frames from SQLite's own page count (no /proc read per
    /// commit) and checkpoints from /proc/thread-self/io around them; judged by the kernel's
    /// count of what this thread handed to write(2), the thread being the group-commit leader of
    /// every write here. Differences allowed: the WAL's 32-byte header at each restart and the
    /// wal-index's 1-byte extension writes, far below 1%.
    func testBytesWrittenAgreeWithTheKernelsCount() throws {
        let engine = try Engines.registry.open("sqlite", directory: root + "/db")
        defer { try? engine.close() }
        let s0 = try engine.stats()
        guard let before = ThreadWriteCounter.bytesWritten() else { throw XCTSkip("no /proc/thread-self/io here") }
        for i in 0..<3000 {
            var b = WriteBatch()
            b.put(Array("key-\(i % 700)".utf8), [UInt8](repeating: UInt8(i & 0xFF), count: 200 + i % 300))
            if i % 7 == 0 { b.delete(Array("key-\((i + 350) % 700)".utf8)) }
            try engine.write(b, sync: i % 10 == 0)
        }
        let after = try XCTUnwrap(ThreadWriteCounter.bytesWritten())
        let s1 = try engine.stats()
        let kernel = Double(after - before)
        let counted = Double(s1.bytesWrittenSinceOpen - s0.bytesWrittenSinceOpen)
        let checkpoints = (s1.details["checkpoints.passive"] ?? 0) + (s1.details["checkpoints.restart"] ?? 0)
        XCTAssertGreaterThan(checkpoints, 0, "no checkpoint ran: \(s1.details)")
        XCTAssertGreaterThan(s1.details["cache.write"] ?? 0, 3000)
        XCTAssertGreaterThan(kernel, 3000 * 4096)
        XCTAssertEqual(counted, kernel, accuracy: kernel * 0.01, "engine \(counted), kernel \(kernel)")
    }
}
