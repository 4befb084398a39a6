import XCTest
import EngineAPI
import Engines

/// Opening a directory that holds another engine's store must fail loudly, never create an
/// empty store beside the data (which would look like data loss to the operator).
final class ForeignStoreTests: XCTestCase {
    func testEnginesRefuseEachOthersStores() throws {
        let names = Engines.registry.names
        for creator in names {
            for opener in names where opener != creator {
                let root = try PosixFiles.makeTemporaryDirectory(prefix: "rusd-foreign")
                defer { try? PosixFiles.removeTree(root) }
                let dir = root + "/store"
                let engine = try Engines.registry.open(creator, directory: dir)
                var batch = WriteBatch()
                batch.put(Array("k".utf8), Array("v".utf8))
                try engine.write(batch, sync: true)
                try engine.close()
                XCTAssertThrowsError(try Engines.registry.open(opener, directory: dir), "\(opener) opened \(creator)'s store") { error in
                    XCTAssertEqual((error as? EngineError)?.kind, .invalidArgument, "\(opener) on \(creator)'s store: \(error)")
                }
                let again = try Engines.registry.open(creator, directory: dir)
                XCTAssertEqual(try again.get(Array("k".utf8)), Array("v".utf8))
                try again.close()
            }
        }
    }
}
