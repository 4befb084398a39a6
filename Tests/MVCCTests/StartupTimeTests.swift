import EngineAPI
import Engines
import Foundation
import XCTest
@testable import MVCC

/// Start-up with many keys on a real engine. A measurement, not an assertion: it runs only with
/// RUSD_STARTUP_KEYS=<n> set (e.g. 1000000) and prints the time to rebuild the index.
final class StartupTimeTests: XCTestCase {
    func testStartupTimeWithManyKeys() throws {
        guard let n = ProcessInfo.processInfo.environment["RUSD_STARTUP_KEYS"].flatMap(Int.init) else {
            throw XCTSkip("set RUSD_STARTUP_KEYS to measure")
        }
        let engineName = ProcessInfo.processInfo.environment["RUSD_STARTUP_ENGINE"] ?? "lmdb"
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rusd-startup-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let engine = try Engines.registry.open(engineName, directory: dir)
            let store = try MVCCStore(engine: engine)
            let w = store.writer
            let value = [UInt8](repeating: 0x61, count: 100)
            var i = 0
            while i < n {
                for _ in 0..<min(10_000, n - i) {
                    w.beginTxn()
                    try w.put(Array("/registry/pods/ns-\(i % 1000)/pod-\(i)".utf8), value, lease: 0)
                    w.endTxn()
                    i += 1
                }
                try w.commit(appliedIndex: UInt64(i))
            }
            store.close()
            try engine.close()
        }
        let engine = try Engines.registry.open(engineName, directory: dir)
        let start = DispatchTime.now()
        let store = try MVCCStore(engine: engine)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        print("startup: \(engineName) \(n) keys: index rebuilt in \(String(format: "%.3f", seconds)) s")
        XCTAssertEqual(store.read().indexedKeyCount, n)
        try engine.close()
    }
}
