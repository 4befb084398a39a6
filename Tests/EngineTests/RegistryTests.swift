import XCTest
import EngineAPI
import Engines

final class RegistryTests: XCTestCase {
    func testUnknownEngineNameListsValidOnes() throws {
        XCTAssertThrowsError(try Engines.registry.open("nope", directory: "/tmp/rusd-never-created")) { error in
            let e = error as? EngineError
            XCTAssertEqual(e?.kind, .invalidArgument)
            XCTAssertTrue(e?.message.contains("unknown engine 'nope'") ?? false, "\(error)")
            for name in Engines.registry.names {
                XCTAssertTrue(e?.message.contains(name) ?? false, "\(error) lacks \(name)")
            }
        }
    }

    func testPrefixSuccessor() {
        XCTAssertEqual(KeyRange.successor(ofPrefix: [0x61, 0xFF]), [0x62])
        XCTAssertNil(KeyRange.successor(ofPrefix: [0xFF, 0xFF]))
        XCTAssertNil(KeyRange.successor(ofPrefix: []))
        XCTAssertTrue(KeyRange.prefix([1, 2]).contains([1, 2, 0]))
        XCTAssertFalse(KeyRange.prefix([1, 2]).contains([1, 3]))
    }
}
