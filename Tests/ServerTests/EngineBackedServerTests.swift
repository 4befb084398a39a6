import EngineAPI
import Engines
import EtcdProto
import EtcdServer
import Foundation
import XCTest

/// The KV path on every real engine: writes, a txn, compaction, leases, and a restart.
final class EngineBackedServerTests: XCTestCase {
    func testEachEngineKeepsStateAcrossRestart() throws {
        for name in Engines.registry.names {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rusd-kv-\(name)-\(UUID())").path
            defer { try? FileManager.default.removeItem(atPath: dir) }
            do {
                let engine = try Engines.registry.open(name, directory: dir)
                let s = try makeServer(engine)
                _ = try s.grantSync(ttl: 100, id: 3)
                for i in 0..<100 { try s.putSync("k\(i)", "v\(i)", lease: i % 10 == 0 ? 3 : 0) }
                var t = Etcdserverpb_TxnRequest()
                t.compare = [compareMod("k1", .equal, 3)]   // k0 at revision 2 (a grant costs none)
                t.success = [putOp("k1", "new"), deleteOp("k2")]
                XCTAssertTrue(try s.txnSync(t).succeeded, name)
                _ = try s.compactSync(50, physical: true)
                s.close()
                try engine.close()
            }
            let engine = try Engines.registry.open(name, directory: dir)
            let s = try makeServer(engine)
            XCTAssertEqual(s.currentRevision, 102, name)
            XCTAssertEqual(try s.get("k", end: "l").count, 99, name)
            XCTAssertEqual(str(try s.get("k1").kvs[0].value), "new", name)
            XCTAssertEtcdError(.compacted, try s.get("k1") { $0.revision = 49 })
            XCTAssertEqual(s.ttl(3).keys.count, 10, name)
            XCTAssertEqual(try s.revokeSync(3).header.revision, 103, name)
            XCTAssertEqual(try s.get("k", end: "l").count, 89, name)
            s.close()
            try engine.close()
        }
    }
}
