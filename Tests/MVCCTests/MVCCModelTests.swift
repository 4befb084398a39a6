import EngineAPI
import InMemoryEngine
import XCTest
@testable import MVCC

/// Random operations against the store and against a naive model (every version of every key
/// in a dictionary), compared at random revisions, across compactions and restarts. Enough keys
/// to split and merge index chunks.
final class MVCCModelTests: XCTestCase {
    struct Version { var value: [UInt8]?; var create: Int64; var mod: Int64; var version: Int64 }

    /// key → versions in revision order (value nil = deleted).
    var model: [[UInt8]: [Version]] = [:]
    var revision: Int64 = 1      // a new store is at revision 1
    var compacted: Int64 = 0

    func modelGet(_ key: [UInt8], at rev: Int64) -> Version? {
        guard let vs = model[key], let v = vs.last(where: { $0.mod <= rev }), v.value != nil else { return nil }
        return v
    }

    func testRandomHistoryMatchesModel() throws {
        var rng = SystemRandomNumberGenerator()
        let seed = UInt64.random(in: 0...UInt64.max, using: &rng)
        var g = SplitMix64(seed: seed)
        let engine = InMemoryEngine()
        var store = try MVCCStore(engine: engine)
        let keys = (0..<1500).map { Array("key/\(String($0 * 7919 % 1500, radix: 16))".utf8) }

        for round in 0..<6 {
            for _ in 0..<40 {   // groups
                for _ in 0..<Int(g.next() % 20 + 1) {   // transactions per group
                    let w = store.writer
                    w.beginTxn()
                    let rev = revision + 1
                    var changed = false
                    for _ in 0..<Int(g.next() % 3 + 1) {
                        let k = keys[Int(g.next() % UInt64(keys.count))]
                        if g.next() % 5 == 0 {
                            let deleted = try w.deleteRange(.single(k))
                            if let cur = model[k]?.last, cur.value != nil {
                                XCTAssertEqual(deleted.count, 1)
                                model[k, default: []].append(Version(value: nil, create: 0, mod: rev, version: 0))
                                changed = true
                            } else {
                                XCTAssertEqual(deleted.count, 0)
                            }
                        } else {
                            let v = Array("v\(g.next() % 1000)".utf8)
                            try w.put(k, v, lease: 0)
                            let cur = model[k]?.last
                            let live = cur?.value != nil
                            model[k, default: []].append(Version(value: v, create: live ? cur!.create : rev, mod: rev,
                                                                 version: live ? cur!.version + 1 : 1))
                            changed = true
                        }
                    }
                    XCTAssertEqual(w.endTxn(), changed ? rev : revision)
                    if changed { revision = rev }
                }
                try store.writer.commit(appliedIndex: UInt64(revision))
            }
            try check(store, &g, seed: seed)
            // Compact somewhere in the second half of the history.
            let c = revision - Int64(g.next() % UInt64(max(1, (revision - compacted) / 2)))
            if c > compacted {
                try store.writer.compact(c)
                try store.writer.commit(appliedIndex: UInt64(revision))
                compacted = c
            }
            try check(store, &g, seed: seed)
            if round % 2 == 1 {
                store.close()
                store = try MVCCStore(engine: engine)
                XCTAssertEqual(store.currentRevision, revision)
                try check(store, &g, seed: seed)
            }
        }
    }

    func check(_ store: MVCCStore, _ g: inout SplitMix64, seed: UInt64) throws {
        let read = store.read()
        XCTAssertEqual(read.revision, revision)
        for _ in 0..<6 {
            let low = max(compacted, 1)
            let at = low + Int64(g.next() % UInt64(revision - low + 1))
            let all = try read.range(.range([0], nil), RangeOptions(revision: at))
            let expected = model.keys.filter { modelGet($0, at: at) != nil }.sorted { $0.lexicographicallyPrecedes($1) }
            XCTAssertEqual(all.kvs.map(\.key), expected, "seed \(seed) at \(at)")
            XCTAssertEqual(all.count, expected.count)
            for kv in all.kvs.prefix(100) {
                let m = modelGet(kv.key, at: at)!
                XCTAssertEqual([kv.createRevision, kv.modRevision, kv.version], [m.create, m.mod, m.version], "seed \(seed)")
                XCTAssertEqual(kv.value, m.value)
            }
            let prefix = Array("key/a".utf8)
            let sub = try read.range(.range(prefix, KeyRange.successor(ofPrefix: prefix)), RangeOptions(revision: at, limit: 5))
            let subExpected = expected.filter { $0.starts(with: prefix) }
            XCTAssertEqual(sub.count, subExpected.count)
            XCTAssertEqual(sub.kvs.map(\.key), Array(subExpected.prefix(5)))
        }
        if compacted > 1 {
            XCTAssertThrowsError(try read.range(.range([0], nil), RangeOptions(revision: compacted - 1)))
        }
    }
}

/// A small deterministic generator (the seed is printed on failure).
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
}
