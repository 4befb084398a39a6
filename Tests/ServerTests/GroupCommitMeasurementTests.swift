import Dispatch
import EngineAPI
import Engines
import EtcdProto
import EtcdServer
import Foundation
import Synchronization
import XCTest

/// Puts from many concurrent clients on a real engine, with fsync. A measurement, not an
/// assertion on speed: runs only with RUSD_GROUP_COMMIT_CLIENTS=<n> set and prints puts/s and
/// puts per synced commit (RUSD_GROUP_COMMIT_ENGINE, default lmdb).
final class GroupCommitMeasurementTests: XCTestCase {
    func testConcurrentPutsOnRealEngine() throws {
        guard let clients = ProcessInfo.processInfo.environment["RUSD_GROUP_COMMIT_CLIENTS"].flatMap(Int.init) else {
            throw XCTSkip("set RUSD_GROUP_COMMIT_CLIENTS to measure")
        }
        let name = ProcessInfo.processInfo.environment["RUSD_GROUP_COMMIT_ENGINE"] ?? "lmdb"
        let perClient = 200
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rusd-gc-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let engine = try Engines.registry.open(name, directory: dir)
        let s = try makeServer(engine)
        let done = DispatchSemaphore(value: 0)
        let failures = Mutex(0)
        let start = DispatchTime.now()
        // Each client issues its next put when the previous one completes (like a gRPC client).
        final class Client: @unchecked Sendable {
            var left: Int
            init(_ n: Int) { left = n }
        }
        for c in 0..<clients {
            let client = Client(perClient)
            @Sendable func next() {
                if client.left == 0 { done.signal(); return }
                client.left -= 1
                var r = Etcdserverpb_PutRequest()
                r.key = Data("/bench/c\(c)/\(client.left)".utf8)
                r.value = Data(repeating: 0x61, count: 256)
                s.put(r) { result in
                    if case .failure = result { failures.withLock { $0 += 1 } }
                    next()
                }
            }
            next()
        }
        for _ in 0..<clients { done.wait() }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let puts = clients * perClient
        print("group commit: \(name) \(clients) clients, \(puts) puts in \(String(format: "%.2f", seconds)) s = \(Int(Double(puts) / seconds)) puts/s, \(s.groupCommitCount) synced commits (\(String(format: "%.1f", Double(puts) / Double(s.groupCommitCount))) puts each)")
        XCTAssertEqual(failures.withLock { $0 }, 0)
        s.close()
        try engine.close()
    }
}
