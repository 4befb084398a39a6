import Foundation
import XCTest
import EngineAPI
@testable import LSMEngine

/// SplitMix64: reproducible from the printed seed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The engine against an in-memory ordered map: puts, deletes, batches, gets, forward and
/// reverse scans with ranges and limits, long-lived views, reopens and full compactions, with a
/// write buffer small enough that flushes and compactions happen all the time.
/// Set LSM_MODEL_SEED to replay a failing run.
final class ModelTests: XCTestCase {
    struct Failure: Error, CustomStringConvertible { let description: String }

    func testRandomizedAgainstOrderedMap() throws {
        let seed = ProcessInfo.processInfo.environment["LSM_MODEL_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 1...UInt64.max)
        print("ModelTests seed: \(seed) (rerun with LSM_MODEL_SEED=\(seed))")
        do {
            try run(seed: seed, operations: 100_000)
        } catch {
            XCTFail("seed \(seed): \(error)")
        }
    }

    private func key(_ i: Int) -> [UInt8] {
        // Mixed lengths, shared prefixes, a 0x00 and a 0xFF byte in some keys.
        var k = Array("k\(i % 7)/".utf8) + Array(String(i).utf8)
        if i % 11 == 0 { k.append(0x00) }
        if i % 13 == 0 { k.append(0xFF) }
        return k
    }

    private func run(seed: UInt64, operations: Int) throws {
        var rng = SeededRandom(state: seed)
        let dir = TempDirectory("lsm-model")
        let options = smallOptions(writeBuffer: 16 << 10, cache: 256 << 10)
        var engine = try LSMEngine.open(directory: dir.store, options: options)
        var model: [[UInt8]: [UInt8]] = [:]
        var views: [(view: any ReadView, model: [[UInt8]: [UInt8]])] = []
        let keySpace = 3000

        func value() -> [UInt8] {
            let n = Int.random(in: 0...48, using: &rng)
            let b = UInt8.random(in: 0...255, using: &rng)
            return [UInt8](repeating: b, count: n)
        }
        func randomKey() -> [UInt8] { key(Int.random(in: 0..<keySpace, using: &rng)) }

        func expectScan(_ v: any ReadView, _ m: [[UInt8]: [UInt8]], step: Int) throws {
            var a = randomKey(), b = randomKey()
            if b.lexicographicallyPrecedes(a) { swap(&a, &b) }
            let range: KeyRange
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: range = .all
            case 1: range = KeyRange(start: a, end: nil)
            case 2: range = .prefix(Array(a.prefix(3)))
            default: range = KeyRange(start: a, end: b)
            }
            let reverse = Bool.random(using: &rng)
            let limit: Int? = Int.random(in: 0..<3, using: &rng) == 0 ? nil : Int.random(in: 1...40, using: &rng)
            var expected = m.filter { range.contains($0.key) }.sorted { $0.key.lexicographicallyPrecedes($1.key) }
            if reverse { expected.reverse() }
            if let limit { expected = Array(expected.prefix(limit)) }
            let got = try v.entries(range, reverse: reverse, limit: limit)
            if got.count != expected.count || zip(got, expected).contains(where: { $0.key != $1.key || $0.value != $1.value }) {
                throw Failure(description: "step \(step): scan \(range) reverse \(reverse) limit \(String(describing: limit)): got \(got.count) entries, expected \(expected.count); first mismatch \(String(describing: zip(got, expected).first(where: { $0.key != $1.key || $0.value != $1.value })))")
            }
        }

        for step in 0..<operations {
            let r = Int.random(in: 0..<1000, using: &rng)
            switch r {
            case 0..<400:
                let k = randomKey(), v = value()
                var b = WriteBatch()
                b.put(k, v)
                try engine.write(b, sync: false)
                model[k] = v
            case 400..<550:
                let k = randomKey()
                var b = WriteBatch()
                b.delete(k)
                try engine.write(b, sync: false)
                model[k] = nil
            case 550..<700:
                var b = WriteBatch()
                var next = model
                for _ in 0..<Int.random(in: 1...20, using: &rng) {
                    let k = randomKey()
                    if Bool.random(using: &rng) {
                        let v = value()
                        b.put(k, v)
                        next[k] = v
                    } else {
                        b.delete(k)
                        next[k] = nil
                    }
                }
                try engine.write(b, sync: Int.random(in: 0..<50, using: &rng) == 0)
                model = next
            case 700..<900:
                let k = randomKey()
                let got = try engine.get(k)
                if got != model[k] {
                    throw Failure(description: "step \(step): get \(k) = \(String(describing: got)), expected \(String(describing: model[k]))")
                }
            case 900..<960:
                try expectScan(try engine.readView(), model, step: step)
            case 960..<975:
                if views.count < 4 {
                    views.append((try engine.readView(), model))
                } else {
                    views.removeFirst()
                }
            case 975..<997:
                if let (v, m) = views.randomElement(using: &rng) {
                    let k = randomKey()
                    if try v.get(k) != m[k] { throw Failure(description: "step \(step): view get \(k) mismatch") }
                    try expectScan(v, m, step: step)
                }
            case 997:
                try engine.reclaimSpace()
            default:
                if Int.random(in: 0..<3, using: &rng) == 0 {
                    views.removeAll()
                    try engine.close()
                    engine = try LSMEngine.open(directory: dir.store, options: options)
                }
            }
        }
        // Everything, both directions, after a final reopen.
        views.removeAll()
        try engine.close()
        engine = try LSMEngine.open(directory: dir.store, options: options)
        let all = try engine.readView().entries(.all)
        let expected = model.sorted { $0.key.lexicographicallyPrecedes($1.key) }
        XCTAssertEqual(all.map(\.key), expected.map(\.key))
        XCTAssertEqual(all.map(\.value), expected.map(\.value))
        XCTAssertEqual(try engine.readView().entries(.all, reverse: true).map(\.key), expected.reversed().map(\.key))
        let stats = try engine.stats()
        print("ModelTests stats after reopen: \(stats.details.filter { $0.key.hasPrefix("level") && $0.value > 0 })")
        try engine.close()
    }
}
