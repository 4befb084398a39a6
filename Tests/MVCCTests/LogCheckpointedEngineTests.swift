import EngineAPI
import InMemoryEngine
import Synchronization
import XCTest
@testable import MVCC

/// `LogCheckpointedEngine` (cluster mode without local fsync) under a manual clock: which
/// writes it syncs, and which applied index it reports durable. The MVCC store writes the
/// applied index through it exactly as the applier does (`StoreWriter.commit`).
final class LogCheckpointedEngineTests: XCTestCase {
    /// A clock the test moves by hand (nanoseconds).
    final class ManualClock: Sendable {
        private let nanos = Mutex<UInt64>(1_000_000_000)
        var now: UInt64 { nanos.withLock { $0 } }
        func advance(milliseconds: UInt64) { nanos.withLock { $0 += milliseconds * 1_000_000 } }
    }

    private func put(_ store: MVCCStore, _ key: String, index: UInt64) throws {
        store.writer.beginTxn()
        try store.writer.put(Array(key.utf8), Array("v".utf8), lease: 0)
        _ = store.writer.endTxn()
        try store.writer.commit(appliedIndex: index)
    }

    func testSyncsAtMostOncePerIntervalAndReportsTheSyncedIndex() throws {
        let memory = InMemoryEngine()
        let clock = ManualClock()
        let engine = try LogCheckpointedEngine(memory, intervalMilliseconds: 1_000, runTimer: false, now: { clock.now })
        XCTAssertEqual(engine.durableAppliedIndex, 0, "an empty store has no applied index yet")
        let store = try MVCCStore(engine: engine)
        let syncedAtOpen = memory.syncedWriteCount

        try put(store, "a", index: 2)      // first synced-write request: synced
        XCTAssertEqual(memory.syncedWriteCount, syncedAtOpen + 1)
        XCTAssertEqual(engine.durableAppliedIndex, 2)
        for i in 3...10 {                  // within the interval: written, not synced
            clock.advance(milliseconds: 50)
            try put(store, "k\(i)", index: UInt64(i))
        }
        XCTAssertEqual(memory.syncedWriteCount, syncedAtOpen + 1)
        XCTAssertEqual(engine.durableAppliedIndex, 2, "unsynced batches must not count as durable")
        XCTAssertEqual(store.appliedIndex, 10, "readers see every applied entry at once")
        XCTAssertEqual(try store.read().range(.single(Array("k10".utf8))).kvs.count, 1)

        clock.advance(milliseconds: 600)   // 1,000 ms since the last sync: the next write syncs
        try put(store, "b", index: 11)
        XCTAssertEqual(memory.syncedWriteCount, syncedAtOpen + 2)
        XCTAssertEqual(engine.durableAppliedIndex, 11)
    }

    func testIdleSyncMakesTheUnsyncedTailDurableAndNeverGoesBack() throws {
        let memory = InMemoryEngine()
        let clock = ManualClock()
        let engine = try LogCheckpointedEngine(memory, intervalMilliseconds: 1_000, runTimer: false, now: { clock.now })
        let store = try MVCCStore(engine: engine)
        try put(store, "a", index: 2)
        clock.advance(milliseconds: 10)
        try put(store, "b", index: 3)
        try engine.syncIfIdle()            // too soon after the last sync: nothing
        XCTAssertEqual(engine.durableAppliedIndex, 2)
        let synced = memory.syncedWriteCount
        clock.advance(milliseconds: 1_000)
        try engine.syncIfIdle()
        XCTAssertEqual(memory.syncedWriteCount, synced + 1)
        XCTAssertEqual(engine.durableAppliedIndex, 3)
        // The idle sync rewrote the record with its own value: the store still resumes at 3.
        XCTAssertEqual(try MVCCStore(engine: memory).appliedIndex, 3)
        clock.advance(milliseconds: 1_000)
        try engine.syncIfIdle()            // nothing unsynced: no write at all
        XCTAssertEqual(memory.syncedWriteCount, synced + 1)
        XCTAssertEqual(engine.durableAppliedIndex, 3)
    }

    func testOpeningSyncsWhatTheEngineHoldsAndWritesNotAskedToSyncPassThrough() throws {
        let memory = InMemoryEngine()
        try put(try MVCCStore(engine: memory), "a", index: 7)
        let before = memory.syncedWriteCount
        let engine = try LogCheckpointedEngine(memory, intervalMilliseconds: 1_000, runTimer: false)
        XCTAssertEqual(memory.syncedWriteCount, before + 1, "opening must sync what a killed process left unsynced")
        XCTAssertEqual(engine.durableAppliedIndex, 7)
        var batch = WriteBatch()
        batch.put(Array("x".utf8), Array("y".utf8))
        try engine.write(batch, sync: false)
        XCTAssertEqual(memory.syncedWriteCount, before + 1)
        XCTAssertEqual(try memory.get(Array("x".utf8)), Array("y".utf8))
    }

    func testAppliedIndexRecordIsFoundOnlyInBatchesThatWriteIt() {
        var batch = WriteBatch()
        batch.put(Array("k".utf8), Array("v".utf8))
        XCTAssertNil(AppliedIndexRecord.index(in: batch))
        batch.put(MetaKey.appliedIndex.engineKey, MetaKey.encode(42))
        XCTAssertEqual(AppliedIndexRecord.index(in: batch), 42)
        var damaged = WriteBatch()
        damaged.put(MetaKey.appliedIndex.engineKey, [1, 2, 3])
        XCTAssertNil(AppliedIndexRecord.index(in: damaged), "a record of the wrong size is not an index")
    }
}
