import XCTest
import EngineAPI
import LSMEngine
#if canImport(Glibc)
import Glibc
#endif

/// The shared conformance suite on the `lsm` engine. The hard-kill check runs
/// `engine-kill-writer lsm DIR`, which opens the engine through the registry.
final class LSMConformanceTests: XCTestCase {
    let suite = EngineConformance(engine: "lsm", corruptionDetection: .checksums,
                                  killWriterExecutable: LSMConformanceTests.killWriterPath()) { directory, options in
        try LSMStore.open(directory: directory, options: options)
    }

    /// `engine-kill-writer` next to the test bundle (.build/<config>/), or RUSD_ENGINE_KILL_WRITER.
    static func killWriterPath() -> String? {
        if let env = getenv("RUSD_ENGINE_KILL_WRITER") { return String(cString: env) }
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        var path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        while let slash = path.lastIndex(of: "/") {
            path = String(path[..<slash])
            let candidate = path + "/engine-kill-writer"
            if access(candidate, X_OK) == 0 { return candidate }
            if path.hasSuffix("/.build") || path.isEmpty { break }
        }
        return nil
    }

    func testBytewiseOrdering() throws { try suite.checkBytewiseOrdering() }
    func testEmptyValues() throws { try suite.checkEmptyValues() }
    func testLargeValues() throws { try suite.checkLargeValues() }
    func testBatchAtomicity() throws { try suite.checkBatchAtomicity() }
    func testScans() throws { try suite.checkScans() }
    func testReadViewIsolation() throws { try suite.checkReadViewIsolation() }
    func testPersistenceAcrossReopen() throws { try suite.checkPersistenceAcrossReopen() }
    func testStats() throws { try suite.checkStats() }
    func testReclaimSpace() throws { try suite.checkReclaimSpace() }
    func testClosedEngine() throws { try suite.checkClosedEngine() }
    func testCorruptionRefused() throws { try suite.checkCorruptionRefused() }
    func testDurabilityAcrossHardKill() throws {
        let report = try suite.checkDurabilityAcrossHardKill()
        XCTAssertGreaterThanOrEqual(report.killPoints, 50)
        XCTAssertGreaterThan(report.batchesAcknowledged, 0)
    }
}
