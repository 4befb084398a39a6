import XCTest
@testable import MVCC

/// `RecentPuts`: never answers with another revision's put, stays within its byte bound, holds
/// the newest put whenever it fits alone, and with small values holds exactly the puts of the
/// last `capacity` main revisions (the last put of each).
final class RecentPutsTests: XCTestCase {
    private func kv(_ i: Int, size: Int) -> KeyValue {
        KeyValue(key: Array("k\(i % 37)".utf8), value: [UInt8](repeating: UInt8(i % 251), count: size),
                 createRevision: Int64(i), modRevision: Int64(i), version: 1, lease: 0)
    }

    func testBoundsAndExactAnswers() {
        let seed = UInt64.random(in: 0...UInt64.max)
        var rng = SplitMix(seed)
        for (capacity, maxBytes) in [(1, 1 << 20), (7, 1 << 20), (64, 3_000), (50, 100_000), (1000, 20_000)] {
            var recent = RecentPuts(capacity: capacity, maxBytes: maxBytes)
            var all: [Revision: KeyValue] = [:]
            var order: [Revision] = []
            var main: Int64 = 0
            for i in 1...3_000 {
                if rng.next() % 700 == 0 {
                    recent.removeAll()
                    XCTAssertEqual(recent.count, 0)
                }
                main += Int64(rng.next() % 4 == 0 ? 0 : 1 + rng.next() % 2)   // same, next, or a gap
                let rev = Revision(main: main, sub: Int64(i))
                let value = kv(i, size: Int(rng.next() % (rng.next() % 20 == 0 ? 4_000 : 200)))
                recent.add(rev, value)
                all[rev] = value
                order.append(rev)
                XCTAssertLessThanOrEqual(recent.bytes, maxBytes, "seed \(seed)")
                if RecentPuts.size(of: value) <= maxBytes {
                    XCTAssertEqual(recent.get(rev), value, "newest put, seed \(seed)")
                }
                if i % 101 == 0 || i > 2_990 {
                    var held = 0, heldBytes = 0
                    for r in order {   // a slot that gaps in the revisions skipped may hold an old put
                        if let got = recent.get(r) {
                            XCTAssertEqual(got, all[r], "\(r), seed \(seed)")
                            held += 1
                            heldBytes += RecentPuts.size(of: got)
                        }
                    }
                    XCTAssertEqual(held, recent.count, "seed \(seed)")
                    XCTAssertEqual(heldBytes, recent.bytes, "seed \(seed)")
                }
            }
        }
    }

    func testSmallValuesFillTheRing() {
        var recent = RecentPuts(capacity: 100, maxBytes: 1 << 20)
        for main in Int64(1)...250 {
            recent.add(Revision(main: main, sub: 0), kv(Int(main), size: 10))
            recent.add(Revision(main: main, sub: 1), kv(Int(main) + 1000, size: 10))
        }
        XCTAssertEqual(recent.count, 100)
        for main in Int64(1)...250 {
            XCTAssertNil(recent.get(Revision(main: main, sub: 0)))
            XCTAssertEqual(recent.get(Revision(main: main, sub: 1)) != nil, main > 150, "\(main)")
        }
    }
}

private struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e3779b97f4a7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58476d1ce4e5b9
        z = (z ^ (z >> 27)) &* 0x94d049bb133111eb
        return z ^ (z >> 31)
    }
}
