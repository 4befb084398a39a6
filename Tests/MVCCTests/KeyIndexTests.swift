import XCTest
@testable import MVCC

/// The index against a sorted model, with enough keys to split leaves and branches, and its
/// copies staying unchanged while the original moves on (what readers rely on).
final class KeyIndexTests: XCTestCase {
    private func entry(_ key: [UInt8], _ main: Int64) -> KeyHistory {
        KeyHistory(key: key, first: IndexedRevision(revision: Revision(main: main, sub: 0), isTombstone: false),
                   createRevision: main, version: 1, lease: 0)
    }

    func testRandomInsertsUpdatesSnapshotsAndCompaction() {
        var generator = SystemRandomNumberGenerator()
        let seed = UInt64.random(in: 0...UInt64.max, using: &generator)
        var rng = SplitMix64(seed: seed)
        var index = KeyIndex()
        var model: [[UInt8]: Int64] = [:]
        var snapshot = KeyIndex()
        var snapshotModel: [[UInt8]: Int64] = [:]
        let n = 3 * KeyIndex.leafMax * KeyIndex.branchMax   // several branch splits
        for i in 0..<n {
            let key = Array("k\(rng.next() % UInt64(n))".utf8)
            let main = Int64(i + 2)
            index.upsert(key, make: { entry(key, main) }) { e in
                if e.latest.revision.main != main {
                    e.append(IndexedRevision(revision: Revision(main: main, sub: 0), isTombstone: false),
                             createRevision: e.createRevision, version: e.version + 1, lease: 0)
                }
            }
            model[key] = main
            if i == n / 2 {
                snapshot = index
                snapshotModel = model
            }
        }
        func check(_ index: KeyIndex, _ model: [[UInt8]: Int64], _ label: String) {
            XCTAssertEqual(index.count, model.count, "\(label), seed \(seed)")
            var visited: [([UInt8], Int64)] = []
            index.forEach(from: [], to: nil) { visited.append(($0.key, $0.latest.revision.main)); return true }
            let expected = model.sorted { $0.key.lexicographicallyPrecedes($1.key) }
            XCTAssertEqual(visited.map(\.0), expected.map(\.key), "\(label) order, seed \(seed)")
            XCTAssertEqual(visited.map(\.1), expected.map(\.value), "\(label) revisions, seed \(seed)")
            for (k, v) in model.prefix(500) {
                XCTAssertEqual(index.get(k)?.latest.revision.main, v, "\(label) get, seed \(seed)")
            }
        }
        check(index, model, "index")
        check(snapshot, snapshotModel, "snapshot taken halfway")
        XCTAssertGreaterThan(index.branches.count, 1)

        // A bounded range: [k1, k2) in byte order.
        var inRange: [[UInt8]] = []
        index.forEach(from: Array("k1".utf8), to: Array("k2".utf8)) { inRange.append($0.key); return true }
        XCTAssertEqual(inRange, model.keys.filter { !$0.lexicographicallyPrecedes(Array("k1".utf8)) && $0.lexicographicallyPrecedes(Array("k2".utf8)) }
            .sorted { $0.lexicographicallyPrecedes($1) }, "seed \(seed)")

        // Compaction at the halfway revision drops every older revision at or below it.
        var dropped: [Revision] = []
        let before = index
        index.compact(at: Int64(n / 2), dropped: &dropped)
        check(index, model, "compacted")
        check(before, model, "copy before compaction")
        index.forEach(from: [], to: nil) { e in
            // etcd's rule: of the revisions at or below the compaction, only the newest stays.
            let atOrBelow = e.allRevisions.filter { $0.revision.main <= Int64(n / 2) }
            XCTAssertLessThanOrEqual(atOrBelow.count, 1, "seed \(seed)")
            return true
        }
        XCTAssertFalse(dropped.isEmpty)
    }
}
