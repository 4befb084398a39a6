import XCTest
import EngineAPI

/// The shared conformance suite on the `rocksdb` engine.
final class RocksDBConformanceTests: XCTestCase {
    let suite = conformanceSuite("rocksdb", .checksums)

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
