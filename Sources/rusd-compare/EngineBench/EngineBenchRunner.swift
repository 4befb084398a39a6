import EngineAPI
import Engines
import Foundation

/// Runs the engine benchmark: every engine open side by side in its own fresh directory, each
/// phase run on one engine after the other (interleaved per engine, so a change in machine load
/// hits all engines alike), single-threaded.
final class EngineBenchRunner {
    let parameters: EngineBenchParameters
    let engineNames: [String]
    let workDir: String
    private var engines: [(name: String, dir: String, engine: any StorageEngine)] = []
    private(set) var results: [EngineBenchResult] = []

    init(parameters: EngineBenchParameters, engineNames: [String], workDir: String) {
        self.parameters = parameters
        self.engineNames = engineNames
        self.workDir = workDir
    }

    private func log(_ s: String) {
        FileHandle.standardError.write(Data((s + "\n").utf8))
    }

    func run() throws {
        var options = EngineOptions()
        options.cacheBytes = parameters.cacheBytes
        options.writeBufferBytes = parameters.writeBufferBytes
        let stamp = "\(getpid())-\(Int(Date().timeIntervalSince1970))"
        for name in engineNames {
            let dir = "\(workDir)/rusd-engine-bench-\(stamp)/\(name)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            engines.append((name, dir, try Engines.registry.open(name, directory: dir, options: options)))
            results.append(EngineBenchResult(engine: name))
        }
        defer {
            for e in engines { try? e.engine.close() }
            try? FileManager.default.removeItem(atPath: "\(workDir)/rusd-engine-bench-\(stamp)")
        }
        let p = parameters
        let total = p.keys + p.syncPuts
        try phase("load \(p.keys) puts, batch \(p.batchSize)") { i, e in
            let io0 = processWriteBytes()
            results[i].load = try timed(p.keys) { try load(e, from: 0, count: p.keys, batch: p.batchSize) }
            results[i].procBytesWritten += processWriteBytes() &- io0
        }
        try phase("\(p.syncPuts) synced puts, batch 1") { i, e in
            let io0 = processWriteBytes()
            results[i].syncPuts = try timed(p.syncPuts) { try load(e, from: p.keys, count: p.syncPuts, batch: 1) }
            results[i].procBytesWritten += processWriteBytes() &- io0
            results[i].logicalBytesWritten = UInt64(total * (EngineWorkload.keyBytes + EngineWorkload.valueBytes))
            results[i].engineBytesWritten = try e.stats().bytesWrittenSinceOpen
            results[i].diskBytesAfterLoad = diskUsageBytes(of: engines[i].dir)
        }
        try phase("\(p.gets) random point gets") { i, e in
            var errors = 0
            results[i].gets = try timed(p.gets) { errors = try gets(e, count: p.gets, keys: total, seed: 42) }
            if errors > 0 { results[i].errors.append("\(errors) gets returned a wrong or missing value") }
        }
        if p.scans > 0 {
            try phase("\(p.scans) forward scans of \(p.scanLength) keys") { i, e in
                var errors = 0
                results[i].scans = try timed(p.scans) { errors = try scans(e, count: p.scans, keys: total, reverse: false, seed: 7) }
                if errors > 0 { results[i].errors.append("\(errors) forward scans returned wrong entries") }
            }
        }
        if p.reverseScans > 0 {
            try phase("\(p.reverseScans) reverse scans of \(p.scanLength) keys") { i, e in
                var errors = 0
                results[i].reverseScans = try timed(p.reverseScans) { errors = try scans(e, count: p.reverseScans, keys: total, reverse: true, seed: 9) }
                if errors > 0 { results[i].errors.append("\(errors) reverse scans returned wrong entries") }
            }
        }
        try phase("delete the oldest \(total / 2) keys + reclaimSpace") { i, e in
            results[i].deleteAndReclaim = try timed(1) {
                var start = 0
                while start < total / 2 {
                    var b = WriteBatch()
                    for k in start..<min(start + p.batchSize, total / 2) { b.delete(EngineWorkload.key(k)) }
                    try e.write(b, sync: true)
                    start += p.batchSize
                }
                try e.reclaimSpace()
            }
            results[i].diskBytesAfterReclaim = diskUsageBytes(of: engines[i].dir)
            // The survivors are still there.
            let v = try e.readView()
            if try v.get(EngineWorkload.key(total / 2 - 1)) != nil { results[i].errors.append("a deleted key is still readable") }
            if try v.get(EngineWorkload.key(total / 2)) != EngineWorkload.value(total / 2) {
                results[i].errors.append("the oldest surviving key is missing after reclaimSpace")
            }
            var survivors = 0
            try v.scan(.all, reverse: false, limit: nil) { _, _ in survivors += 1; return true }
            if survivors != total - total / 2 {
                results[i].errors.append("\(survivors) keys after delete + reclaimSpace, expected \(total - total / 2)")
            }
        }
    }

    private func phase(_ title: String, _ body: (Int, any StorageEngine) throws -> Void) throws {
        for (i, e) in engines.enumerated() {
            log("\(e.name): \(title)")
            try body(i, e.engine)
        }
    }

    private func timed(_ operations: Int, _ body: () throws -> Void) throws -> PhaseResult {
        let t0 = monotonicNanos()
        try body()
        return PhaseResult(operations: operations, seconds: secondsSince(t0))
    }

    private func load(_ e: any StorageEngine, from: Int, count: Int, batch: Int) throws {
        var i = from
        let end = from + count
        while i < end {
            var b = WriteBatch()
            for k in i..<min(i + batch, end) { b.put(EngineWorkload.key(k), EngineWorkload.value(k)) }
            try e.write(b, sync: true)
            i += batch
        }
    }

    /// Uniformly random point gets through one read view; returns the number of wrong answers.
    private func gets(_ e: any StorageEngine, count: Int, keys: Int, seed: UInt64) throws -> Int {
        var rng = SplitMix64(seed: seed)
        let keyList = (0..<count).map { _ in Int(rng.next() % UInt64(keys)) }
        let v = try e.readView()
        var errors = 0
        for k in keyList {
            let got = try v.get(EngineWorkload.key(k))
            if got.map({ $0.withUnsafeBytes { EngineWorkload.isValue($0, of: k) } }) != true { errors += 1 }
        }
        return errors
    }

    /// Scans of `scanLength` consecutive keys from random starts, each through a fresh view;
    /// returns the number of scans that did not see exactly the expected keys and values.
    private func scans(_ e: any StorageEngine, count: Int, keys: Int, reverse: Bool, seed: UInt64) throws -> Int {
        var rng = SplitMix64(seed: seed)
        let length = min(parameters.scanLength, keys)
        var errors = 0
        for _ in 0..<count {
            let first = Int(rng.next() % UInt64(keys - length + 1))
            let range = KeyRange(start: EngineWorkload.key(first), end: EngineWorkload.key(first + length))
            var expected = reverse ? first + length - 1 : first
            var ok = true
            var seen = 0
            try e.readView().scan(range, reverse: reverse, limit: nil) { k, v in
                if EngineWorkload.index(of: k) != expected || !EngineWorkload.isValue(v, of: expected) { ok = false }
                expected += reverse ? -1 : 1
                seen += 1
                return true
            }
            if !ok || seen != length { errors += 1 }
        }
        return errors
    }
}
