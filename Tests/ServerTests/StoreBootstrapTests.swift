import EngineAPI
import Engines
import XCTest
@testable import MVCC

final class StoreBootstrapTests: XCTestCase {
    /// A new store gets log entry 1 (as etcd's member-adding first entry); an existing store,
    /// or one restored from a snapshot, is left alone.
    func testBootstrapOnlyOnceAndOnlyOnNewStores() throws {
        let dir = TempDirectory("bootstrap")
        defer { dir.remove() }
        let engine = try Engines.registry.open(Engines.registry.names[0], directory: dir.path + "/a")
        XCTAssertTrue(try StoreBootstrap.bootstrapIfNew(engine, memberID: 42, memberRecord: Array("m".utf8)))
        XCTAssertFalse(try StoreBootstrap.bootstrapIfNew(engine, memberID: 42, memberRecord: Array("m".utf8)))
        let store = try MVCCStore(engine: engine)
        XCTAssertEqual(store.appliedIndex, 1)
        XCTAssertEqual(store.currentRevision, 1)
        XCTAssertEqual(try store.hashKV(revision: 0).hash, 1_084_519_789)  // etcd's empty-store HashKV
        store.writer.beginTxn()
        try store.writer.put(Array("k".utf8), Array("v".utf8), lease: 0)
        _ = store.writer.endTxn()
        try store.writer.commit(appliedIndex: 2)
        store.close()
        try engine.close()

        // A store with history but no layout record yet (written before bootstrap existed).
        let other = try Engines.registry.open(Engines.registry.names[0], directory: dir.path + "/b")
        let s2 = try MVCCStore(engine: other)
        s2.writer.beginTxn()
        try s2.writer.put(Array("k".utf8), Array("v".utf8), lease: 0)
        _ = s2.writer.endTxn()
        try s2.writer.commit(appliedIndex: 7)
        s2.close()
        XCTAssertFalse(try StoreBootstrap.bootstrapIfNew(other, memberID: 1, memberRecord: []))
        XCTAssertEqual(try MVCCStore(engine: other).appliedIndex, 7)
        try other.close()
    }
}
