import XCTest
@testable import MVCC

/// `KeyHistory` against a plain array model: appends in place into storage shared with
/// copies (readers' snapshots) must never change what an earlier copy sees, also when an
/// older copy appends after a newer one (the writer after a rollback), and compaction and
/// visibility follow etcd's rules.
final class KeyHistoryTests: XCTestCase {
    private func rev(_ main: Int64, _ sub: Int64 = 0, tombstone: Bool = false) -> IndexedRevision {
        IndexedRevision(revision: Revision(main: main, sub: sub), isTombstone: tombstone)
    }

    /// etcd's visibility rule on the model: newest revision with main <= at, nil if tombstone.
    private func modelVisible(_ revs: [IndexedRevision], at: Int64) -> Revision? {
        guard let r = revs.last(where: { $0.revision.main <= at }) else { return nil }
        return r.isTombstone ? nil : r.revision
    }

    private func check(_ h: KeyHistory, _ model: [IndexedRevision], key: [UInt8], _ label: String) {
        XCTAssertEqual(h.allRevisions, model, label)
        XCTAssertEqual(h.latest, model.last, label)
        XCTAssertEqual(h.key, key, label)
        XCTAssertEqual(h.compare(key), 0, label)
        guard let first = model.first?.revision.main, let last = model.last?.revision.main else { return }
        for at in (first - 1)...(last + 1) {
            XCTAssertEqual(h.visibleRevision(at: at), modelVisible(model, at: at), "\(label) at \(at)")
        }
    }

    func testCopiesKeepTheirViewWhileOthersAppend() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SplitMix64(seed: seed)
        for keyLength in [0, 1, 7, 8, 9, 23] {
            let key = (0..<keyLength).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 5) }
            var main: Int64 = 1
            var h = KeyHistory(key: key, first: rev(main), createRevision: main, version: 1, lease: 7)
            var model = [rev(main)]
            var copies: [(KeyHistory, [IndexedRevision])] = []
            for step in 0..<300 {
                main += Int64(1 + rng.next() % 3)
                let r = rev(main, Int64(rng.next() % 3), tombstone: rng.next() % 5 == 0)
                switch rng.next() % 10 {
                case 0 where !copies.isEmpty:
                    // Go back to an older copy (a rollback) and append from there.
                    let i = Int(rng.next() % UInt64(copies.count))
                    (h, model) = copies[i]
                case 1:
                    copies.append((h, model))
                default:
                    break
                }
                h.append(r, createRevision: main, version: Int64(step), lease: 0)
                model.append(r)
                XCTAssertEqual(h.version, Int64(step))
            }
            check(h, model, key: key, "writer, key length \(keyLength), seed \(seed)")
            for (i, (c, m)) in copies.enumerated() {
                check(c, m, key: key, "copy \(i), key length \(keyLength), seed \(seed)")
            }
            // Compaction on a copy leaves the others alone and follows etcd's rule.
            for (c, m) in copies.prefix(5) + [(h, model)] {
                guard let last = m.last?.revision.main else { continue }
                let at = Int64(rng.next() % UInt64(last + 2))
                var compacted = c
                var dropped: [Revision] = []
                let kept = compacted.compact(at: at, dropped: &dropped)
                var keepFrom = m.lastIndex(where: { $0.revision.main <= at }) ?? 0
                if m[keepFrom].revision.main <= at && m[keepFrom].isTombstone { keepFrom += 1 }
                XCTAssertEqual(dropped, m[..<keepFrom].map(\.revision), "seed \(seed)")
                XCTAssertEqual(kept, keepFrom < m.count, "seed \(seed)")
                // A conservative check: whenever compaction changes something, it says so.
                if keepFrom > 0 { XCTAssertTrue(c.needsCompaction(at: at), "seed \(seed)") }
                if kept {
                    check(compacted, Array(m[keepFrom...]), key: key, "compacted at \(at), seed \(seed)")
                    var grown = compacted
                    grown.append(rev(last + 1), createRevision: 1, version: 1, lease: 0)
                    check(grown, Array(m[keepFrom...]) + [rev(last + 1)], key: key, "grown, seed \(seed)")
                    check(compacted, Array(m[keepFrom...]), key: key, "compacted after growth, seed \(seed)")
                }
                check(c, m, key: key, "copy after compaction, seed \(seed)")
            }
        }
    }

    func testKeyOrderMatchesCompareBytes() {
        let keys: [[UInt8]] = [[], [0], [0, 0], [1], [1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 7, 9], [255], [255, 0]]
        for a in keys {
            let h = KeyHistory(key: a, first: rev(1), createRevision: 1, version: 1, lease: 0)
            for b in keys {
                XCTAssertEqual(h.compare(b), compareBytes(a, b), "\(a) vs \(b)")
            }
        }
    }
}
