import Foundation
import XCTest
import EngineAPI
@testable import LSMEngine

final class ConcurrencyTests: XCTestCase {
    /// Readers scan and get through views while a writer overwrites and compactions (automatic
    /// and full) replace the tables they read. Each view must keep seeing one consistent state:
    /// every key of a round carries that round's value.
    func testReadersDuringCompaction() throws {
        let dir = TempDirectory()
        let engine = try LSMEngine.open(directory: dir.store, options: smallOptions(writeBuffer: 8 << 10))
        let keys = 400
        func writeRound(_ round: Int) throws {
            var b = WriteBatch()
            for i in 0..<keys { b.put(bytes(String(format: "key%04d", i)), bytes("round\(round)")) }
            try engine.write(b, sync: false)
        }
        try writeRound(0)
        let stop = LockedFlag()
        let failures = LockedList()
        let group = DispatchGroup()
        for r in 0..<2 {
            group.enter()
            Thread {
                defer { group.leave() }
                var n = 0
                while !stop.value {
                    do {
                        let view = try engine.readView()
                        let entries = try view.entries(.all, reverse: n % 2 == 1)
                        if entries.count != keys { failures.add("reader \(r): \(entries.count) keys") }
                        let values = Set(entries.map(\.value))
                        if values.count != 1 { failures.add("reader \(r): mixed rounds \(values.count)") }
                        let k = bytes(String(format: "key%04d", n % keys))
                        if try view.get(k) != entries.first?.value { failures.add("reader \(r): get differs from scan") }
                    } catch {
                        failures.add("reader \(r): \(error)")
                    }
                    n += 1
                }
            }.start()
        }
        for round in 1...60 {
            try writeRound(round)
            if round % 20 == 0 { try engine.reclaimSpace() }
        }
        stop.value = true
        group.wait()
        XCTAssertEqual(failures.items, [])
        let stats = try engine.stats()
        XCTAssertGreaterThan(stats.details["compactions"] ?? 0, 0)
        try engine.close()
        // Obsolete tables were deleted once no view needed them.
        let reopened = try LSMEngine.open(directory: dir.store, options: smallOptions(writeBuffer: 8 << 10))
        try reopened.reclaimSpace()
        XCTAssertEqual(try reopened.readView().entries(.all).count, keys)
        XCTAssertLessThanOrEqual(dir.files(withSuffix: ".sst").count, 3)
        try reopened.close()
    }

    /// Concurrent synced writers share fsyncs (group commit) and lose nothing.
    func testConcurrentSyncedWriters() throws {
        let dir = TempDirectory()
        let engine = try LSMEngine.open(directory: dir.store, options: smallOptions(writeBuffer: 64 << 10))
        let failures = LockedList()
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for i in 0..<100 {
                do { try engine.put("t\(t)-\(i)", "v\(i)", sync: true) } catch { failures.add("\(error)") }
            }
        }
        XCTAssertEqual(failures.items, [])
        try engine.close()
        let reopened = try LSMEngine.open(directory: dir.store, options: smallOptions())
        XCTAssertEqual(try reopened.readView().entries(.all).count, 800)
        try reopened.close()
    }
}

final class LockedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var v = false
    var value: Bool {
        get { lock.withLock { v } }
        set { lock.withLock { v = newValue } }
    }
}

final class LockedList: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [String] = []
    func add(_ s: String) { lock.withLock { list.append(s) } }
    var items: [String] { lock.withLock { list } }
}
