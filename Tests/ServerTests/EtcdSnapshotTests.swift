#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import EngineAPI
import Engines
import EtcdSnapshot
import Synchronization
import XCTest
@testable import MVCC

/// Writes a snapshot of `store` to `path`; returns its bytes.
@discardableResult
func saveSnapshot(_ store: MVCCStore, to path: String, chunkSize: Int = 4096) throws -> [UInt8] {
    var bytes: [UInt8] = []
    var chunks = 0
    try EtcdSnapshotWriter.write(engine: store.engine, chunkSize: chunkSize) { chunk, total in
        bytes += chunk
        XCTAssertLessThanOrEqual(bytes.count, total)
        chunks += 1
        return true
    }
    XCTAssertGreaterThan(chunks, 1)
    try writeFile(path, bytes)
    return bytes
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    XCTAssertGreaterThanOrEqual(fd, 0)
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
}

/// Snapshots in etcd's format, written from and restored into every engine (etcd and etcdctl
/// judge the same files in Tests/compat/test_snapshot_etcd.py).
final class EtcdSnapshotTests: XCTestCase {
    /// lmdb → leveldb → … → the first engine again: every restore has the source's HashKV at
    /// every revision still readable, and the same revisions.
    func testRoundTripThroughEveryEngine() throws {
        let names = Engines.registry.names + [Engines.registry.names[0]]
        let dir = TempDirectory("snap-rt")
        defer { dir.remove() }
        var engine = try Engines.registry.open(names[0], directory: dir.path + "/0")
        var store = try MVCCStore(engine: engine)
        let revs = try applyHistory(store)
        store.close()
        let checkRevs: [Int64] = [0, store.compactRevision + 1, revs[45], revs.last!]
        let expected = try checkRevs.map { try store.hashKV(revision: $0) }
        for (step, name) in names.enumerated().dropFirst() {
            let file = dir.path + "/snap\(step)"
            let bytes = try saveSnapshot(store, to: file)
            XCTAssertEqual(bytes.count % 512, 32, "etcdctl requires 512·n + 32 bytes")
            XCTAssertEqual(Array(bytes.suffix(32)), SHA256.hash(Array(bytes.dropLast(32))))
            store.close()
            try engine.close()
            engine = try Engines.registry.open(name, directory: dir.path + "/\(step)")
            XCTAssertGreaterThan(try EtcdSnapshotFile(path: file).restore(into: engine).versions, 0)
            store = try MVCCStore(engine: engine)
            XCTAssertEqual(try checkRevs.map { try store.hashKV(revision: $0) }, expected, "after restoring into \(name)")
            XCTAssertEqual(store.currentRevision, revs.last!)
            XCTAssertEqual(store.appliedIndex, UInt64(revs.count))
        }
        store.close()
        try engine.close()
    }

    /// A snapshot taken while a writer keeps committing is one consistent state: restored, its
    /// hash equals the source's HashKV at the restored revision.
    func testSnapshotDuringWritesIsConsistent() throws {
        let dir = TempDirectory("snap-live")
        defer { dir.remove() }
        let engine = try Engines.registry.open(Engines.registry.names[0], directory: dir.path + "/src")
        let store = try MVCCStore(engine: engine)
        _ = try applyHistory(store, steps: 40, compactAt: nil)
        let stop = StopFlag()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            var i = 0
            while !stop.value.load(ordering: .relaxed) {
                store.writer.beginTxn()
                _ = try? store.writer.put(Array("live/\(i % 50)".utf8), Array(repeating: 7, count: 300), lease: 0)
                _ = store.writer.endTxn()
                _ = try? store.writer.commit(appliedIndex: UInt64(1000 + i))
                i += 1
            }
            done.signal()
        }
        let before = store.currentRevision
        while store.currentRevision < before + 2 { usleep(1000) }
        let file = dir.path + "/snap"
        var bytes: [UInt8] = []
        try EtcdSnapshotWriter.write(engine: store.engine, chunkSize: 1024) { chunk, _ in
            bytes += chunk
            usleep(2000)  // let writes land while the view is open
            return true
        }
        stop.value.store(true, ordering: .relaxed)
        done.wait()
        try writeFile(file, bytes)
        let target = try Engines.registry.open(Engines.registry.names.last!, directory: dir.path + "/dst")
        _ = try EtcdSnapshotFile(path: file).restore(into: target)
        let restored = try MVCCStore(engine: target)
        let r = try restored.hashKV(revision: 0)
        XCTAssertLessThan(r.currentRevision, store.currentRevision, "writes should have continued during the snapshot")
        XCTAssertEqual(r.hash, try store.hashKV(revision: r.currentRevision).hash)
        restored.close()
        try target.close()
        store.close()
        try engine.close()
    }

    func testCorruptAndTruncatedSnapshotsAreRefused() throws {
        let dir = TempDirectory("snap-bad")
        defer { dir.remove() }
        let engine = try Engines.registry.open(Engines.registry.names[0], directory: dir.path + "/src")
        let store = try MVCCStore(engine: engine)
        _ = try applyHistory(store, steps: 20, compactAt: nil)
        let good = try saveSnapshot(store, to: dir.path + "/good", chunkSize: 512)
        store.close()
        try engine.close()
        XCTAssertNoThrow(try EtcdSnapshotFile(path: dir.path + "/good").verifyChecksum())
        XCTAssertNoThrow(try EtcdSnapshotFile(path: dir.path + "/good").status())

        var flipped = good
        flipped[700] ^= 0x01
        try writeFile(dir.path + "/flipped", flipped)
        XCTAssertThrowsError(try EtcdSnapshotFile(path: dir.path + "/flipped").verifyChecksum()) { error in
            XCTAssertTrue("\(error)".contains("SHA-256 mismatch"), "\(error)")
            XCTAssertTrue("\(error)".contains(dir.path + "/flipped"), "\(error)")
        }
        try writeFile(dir.path + "/short", Array(good.dropLast(100)))
        XCTAssertThrowsError(try EtcdSnapshotFile(path: dir.path + "/short").status()) { error in
            XCTAssertTrue("\(error)".contains("offset"), "\(error)")
        }
        // Right length and checksum, wrong content.
        var foreign = [UInt8](repeating: 0x42, count: 1024)
        foreign += SHA256.hash(foreign)
        try writeFile(dir.path + "/foreign", foreign)
        XCTAssertThrowsError(try EtcdSnapshotFile(path: dir.path + "/foreign")) { error in
            XCTAssertTrue("\(error)".contains("no valid meta page"), "\(error)")
        }
        // rusd's former format is named as such.
        var former = Array("RUSDSNAP".utf8) + [UInt8](repeating: 0, count: 504)
        former += SHA256.hash(former)
        try writeFile(dir.path + "/former", former)
        XCTAssertThrowsError(try EtcdSnapshotFile(path: dir.path + "/former")) { error in
            XCTAssertTrue("\(error)".contains("former format"), "\(error)")
        }
        // A corrupt file writes nothing into the target engine.
        let target = try Engines.registry.open(Engines.registry.names[0], directory: dir.path + "/dst")
        XCTAssertThrowsError(try EtcdSnapshotFile(path: dir.path + "/flipped").restore(into: target))
        XCTAssertEqual(try target.readView().entries(.all).count, 0)
        try target.close()
    }
}

final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}
