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
/// The reference: a dictionary plus its keys kept sorted (bytewise).
struct OrderedModel {
    var values: [[UInt8]: [UInt8]] = [:]
    var keys: [[UInt8]] = []

    /// First index whose key >= k.
    func lowerBound(_ k: [UInt8]) -> Int {
        var lo = 0, hi = keys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if keys[mid].lexicographicallyPrecedes(k) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    subscript(_ k: [UInt8]) -> [UInt8]? {
        get { values[k] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: k) == nil { keys.insert(k, at: lowerBound(k)) }
            } else if values.removeValue(forKey: k) != nil {
                keys.remove(at: lowerBound(k))
            }
        }
    }

    func entries(_ range: KeyRange, reverse: Bool, limit: Int?) -> [KeyValue] {
        let lo = lowerBound(range.start)
        let hi = range.end.map { lowerBound($0) } ?? keys.count
        guard lo < hi else { return [] }
        let n = min(hi - lo, limit ?? Int.max)
        return (0..<n).map { i in
            let k = keys[reverse ? hi - 1 - i : lo + i]
            return KeyValue(key: k, value: values[k]!)
        }
    }
}

final class ModelTests: XCTestCase {
    struct Failure: Error, CustomStringConvertible { let description: String }

    func testRandomizedAgainstOrderedMap() throws {
        let seed = ProcessInfo.processInfo.environment["LSM_MODEL_SEED"].flatMap { UInt64($0) }
            ?? UInt64.random(in: 1...UInt64.max)
        print("ModelTests seed: \(seed) (rerun with LSM_MODEL_SEED=\(seed))")
        do {
            try run(seed: seed, operations: Int(ProcessInfo.processInfo.environment["LSM_MODEL_OPS"] ?? "") ?? 100_000)
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
        let options = smallOptions(writeBuffer: 32 << 10, cache: 8 << 20)
        var engine = try LSMEngine.open(directory: dir.store, options: options)
        var model = OrderedModel()
        var views: [(view: any ReadView, model: OrderedModel)] = []
        let keySpace = 3000

        func value() -> [UInt8] {
            let n = Int.random(in: 0...48, using: &rng)
            let b = UInt8.random(in: 0...255, using: &rng)
            return [UInt8](repeating: b, count: n)
        }
        func randomKey() -> [UInt8] { key(Int.random(in: 0..<keySpace, using: &rng)) }

        var modelScanSeconds = 0.0, engineScanSeconds = 0.0
        defer { print("ModelTests scan time: model \(modelScanSeconds) s, engine \(engineScanSeconds) s") }
        func expectScan(_ v: any ReadView, _ m: OrderedModel, step: Int) throws {
            var a = randomKey(), b = randomKey()
            if b.lexicographicallyPrecedes(a) { swap(&a, &b) }
            let range: KeyRange
            let shape = Int.random(in: 0..<4, using: &rng)
            switch shape {
            case 0: range = .all
            case 1: range = KeyRange(start: a, end: nil)
            case 2: range = .prefix(Array(a.prefix(3)))
            default: range = KeyRange(start: a, end: b)
            }
            let reverse = Bool.random(using: &rng)
            // Unlimited scans only over bounded ranges, to keep the test fast in debug builds.
            let limit: Int? = shape == 3 && Int.random(in: 0..<4, using: &rng) == 0 ? nil : Int.random(in: 1...25, using: &rng)
            let tm = DispatchTime.now().uptimeNanoseconds
            defer { modelScanSeconds += Double(DispatchTime.now().uptimeNanoseconds - tm) / 1e9 }
            let expected = m.entries(range, reverse: reverse, limit: limit)
            let te = DispatchTime.now().uptimeNanoseconds
            let got = try v.entries(range, reverse: reverse, limit: limit)
            engineScanSeconds += Double(DispatchTime.now().uptimeNanoseconds - te) / 1e9
            if got.count != expected.count || zip(got, expected).contains(where: { $0.key != $1.key || $0.value != $1.value }) {
                throw Failure(description: "step \(step): scan \(range) reverse \(reverse) limit \(String(describing: limit)): got \(got.count) entries, expected \(expected.count); first mismatch \(String(describing: zip(got, expected).first(where: { $0.key != $1.key || $0.value != $1.value })))")
            }
        }

        var timing: [Int: Double] = [:]
        defer { print("ModelTests timing by op bucket: \(timing.sorted { $0.key < $1.key })") }
        for step in 0..<operations {
            let r = Int.random(in: 0..<1000, using: &rng)
            let t0 = DispatchTime.now().uptimeNanoseconds
            defer { timing[r < 400 ? 0 : r < 550 ? 400 : r < 700 ? 550 : r < 900 ? 700 : r < 920 ? 900 : r < 975 ? 920 : r < 985 ? 975 : r < 997 ? 985 : r, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
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
                var changes: [([UInt8], [UInt8]?)] = []
                for _ in 0..<Int.random(in: 1...12, using: &rng) {
                    let k = randomKey()
                    if Bool.random(using: &rng) {
                        let v = value()
                        b.put(k, v)
                        changes.append((k, v))
                    } else {
                        b.delete(k)
                        changes.append((k, nil))
                    }
                }
                try engine.write(b, sync: Int.random(in: 0..<50, using: &rng) == 0)
                for (k, v) in changes { model[k] = v }
            case 700..<900:
                let k = randomKey()
                let got = try engine.get(k)
                if got != model[k] {
                    throw Failure(description: "step \(step): get \(k) = \(String(describing: got)), expected \(String(describing: model[k]))")
                }
            case 900..<920:
                try expectScan(try engine.readView(), model, step: step)
            case 920..<975:
                let k = randomKey()
                if try engine.get(k) != model[k] { throw Failure(description: "step \(step): get \(k) mismatch") }
            case 975..<985:
                if views.count < 4 {
                    views.append((try engine.readView(), model))
                } else {
                    views.removeFirst()
                }
            case 985..<997:
                if let (v, m) = views.randomElement(using: &rng) {
                    let k = randomKey()
                    if try v.get(k) != m[k] { throw Failure(description: "step \(step): view get \(k) mismatch") }
                    try expectScan(v, m, step: step)
                }
            case 997:
                if Int.random(in: 0..<3, using: &rng) == 0 { try engine.reclaimSpace() }
            default:
                if r == 999 && Int.random(in: 0..<2, using: &rng) == 0 {
                    views.removeAll()
                    try engine.close()
                    engine = try LSMEngine.open(directory: dir.store, options: options)
                }
            }
        }
        // Everything, both directions, after a final reopen.
        let before = try engine.stats().details
        print("ModelTests engine counters: \(["flushes", "compactions", "trivial.moves", "stall.seconds", "slowdowns", "stalls"].map { "\($0)=\(before[$0] ?? 0)" })")
        views.removeAll()
        try engine.close()
        engine = try LSMEngine.open(directory: dir.store, options: options)
        let all = try engine.readView().entries(.all)
        let expected = model.entries(.all, reverse: false, limit: nil)
        XCTAssertEqual(all.map(\.key), expected.map(\.key))
        XCTAssertEqual(all.map(\.value), expected.map(\.value))
        XCTAssertEqual(try engine.readView().entries(.all, reverse: true).map(\.key), expected.reversed().map(\.key))
        let stats = try engine.stats()
        print("ModelTests stats after reopen: \(stats.details.filter { $0.key.hasPrefix("level") && $0.value > 0 })")
        try engine.close()
    }
}
