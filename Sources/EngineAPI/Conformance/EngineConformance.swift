#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The shared conformance suite every engine must pass. An engine's test file runs it with one
/// line (`try suite.runAll()`) or one line per check (`try suite.checkScans()`); every check
/// throws `ConformanceFailure` (or the engine's own error) describing what went wrong.
///
/// Each check works in its own temporary directory, which it removes afterwards. No check
/// depends on XCTest; expected results come from a plain in-memory model (a dictionary), never
/// from the engine under test.
///
/// Use from an engine's tests (see Tests/EngineTests/LMDBConformanceTests.swift):
///
///     let suite = EngineConformance(engine: "lsm", corruptionDetection: .checksums,
///                                   killWriterExecutable: pathOfEngineKillWriter) { dir, options in
///         try Engines.registry.open("lsm", directory: dir, options: options)
///     }
///     func testScans() throws { try suite.checkScans() }      // one line per check, or
///     func testAll() throws { try suite.runAll() }             // one line for everything
///
/// The hard-kill check spawns `engine-kill-writer ENGINE DIR`, which opens the engine through
/// `Engines.registry`: an engine must be registered there to be kill-tested. Set
/// RUSD_CONFORMANCE_SEED to repeat a run's data.
public struct EngineConformance: Sendable {
    public typealias Opener = @Sendable (_ directory: String, _ options: EngineOptions) throws -> any StorageEngine

    /// What an engine can detect of damaged files.
    public enum CorruptionDetection: Sendable {
        /// Checksums on stored data: a flipped byte in a data file is reported as `.corruption`
        /// at open or on read, never served.
        case checksums
        /// No data checksums (the reason is logged): only structural damage (a data file
        /// replaced by garbage, or truncated) is refused; a flipped byte inside stored data
        /// cannot be detected and is not checked.
        case structuralOnly(reason: String)
    }

    public let engineName: String
    public let open: Opener
    public let corruptionDetection: CorruptionDetection
    /// Path of the `engine-kill-writer` executable, for `checkDurabilityAcrossHardKill`.
    public var killWriterExecutable: String?
    /// Random kill points for `checkDurabilityAcrossHardKill`.
    public var killPoints: Int = 50
    /// Where checks report their numbers (kill points, batches verified, documented limits).
    public var log: @Sendable (String) -> Void = { print($0) }
    /// Seed for the data the checks generate (printed in failures, so a run can be repeated).
    public var seed: UInt64

    public init(engine: String, corruptionDetection: CorruptionDetection, killWriterExecutable: String? = nil,
                open: @escaping Opener) {
        self.engineName = engine
        self.open = open
        self.corruptionDetection = corruptionDetection
        self.killWriterExecutable = killWriterExecutable
        if let text = getenv("RUSD_CONFORMANCE_SEED"), let s = UInt64(String(cString: text)) {
            seed = s
        } else {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            seed = UInt64(ts.tv_nsec) ^ (UInt64(ts.tv_sec) << 20)
        }
    }

    /// Every check, in a sensible order, by name.
    public var allChecks: [(name: String, run: @Sendable () throws -> Void)] {
        [
            ("bytewiseOrdering", checkBytewiseOrdering),
            ("emptyValues", checkEmptyValues),
            ("largeValues", checkLargeValues),
            ("batchAtomicity", checkBatchAtomicity),
            ("scans", checkScans),
            ("readViewIsolation", checkReadViewIsolation),
            ("persistenceAcrossReopen", checkPersistenceAcrossReopen),
            ("stats", checkStats),
            ("reclaimSpace", checkReclaimSpace),
            ("closedEngine", checkClosedEngine),
            ("corruptionRefused", checkCorruptionRefused),
            ("durabilityAcrossHardKill", { _ = try checkDurabilityAcrossHardKill() }),
        ]
    }

    /// Runs every check; throws one failure listing every check that failed.
    public func runAll() throws {
        var failures: [String] = []
        for check in allChecks {
            do { try check.run() } catch { failures.append("\(check.name): \(error)") }
        }
        if !failures.isEmpty {
            throw ConformanceFailure(engine: engineName, check: "runAll",
                                     message: "\(failures.count) check(s) failed (seed \(seed)):\n" + failures.joined(separator: "\n"))
        }
    }

    // MARK: Helpers shared by the checks

    func fail(_ check: String, _ message: String) -> ConformanceFailure {
        ConformanceFailure(engine: engineName, check: check, message: message + " (seed \(seed))")
    }

    func expect(_ condition: Bool, _ check: String, _ message: @autoclosure () -> String) throws {
        if !condition { throw fail(check, message()) }
    }

    /// Runs `body` in a fresh temporary directory, removed afterwards.
    func withDirectory<T>(_ check: String, _ body: (String) throws -> T) throws -> T {
        let dir = try PosixFiles.makeTemporaryDirectory(prefix: "rusd-conformance-\(engineName)-\(check)")
        defer { try? PosixFiles.removeTree(dir) }
        return try body(dir + "/store")
    }

    /// Opens a store in a fresh directory, runs `body`, closes it.
    func withEngine<T>(_ check: String, options: EngineOptions = EngineOptions(),
                       _ body: (any StorageEngine, String) throws -> T) throws -> T {
        try withDirectory(check) { dir in
            let engine = try open(dir, options)
            defer { try? engine.close() }
            return try body(engine, dir)
        }
    }

    func random(_ salt: UInt64) -> SplitMix64 { SplitMix64(seed: seed &+ salt &* 0x9E37_79B9_7F4A_7C15) }

    /// Compares the whole store (scans both ways, and a get per key) with `model`.
    func expectContents(_ engine: any StorageEngine, _ model: [[UInt8]: [UInt8]], _ check: String,
                        _ context: String) throws {
        let view = try engine.readView()
        try expectContents(view, model, check, context)
        for (key, value) in model {
            let got = try engine.get(key)
            try expect(got == value, check, "\(context): get(\(hex(key))) returned \(describe(got)), expected \(describe(value))")
        }
    }

    func expectContents(_ view: any ReadView, _ model: [[UInt8]: [UInt8]], _ check: String, _ context: String) throws {
        let expected = sortedEntries(model)
        let forward = try view.entries(.all)
        try expectSame(forward, expected, check, "\(context): forward scan of everything")
        let backward = try view.entries(.all, reverse: true)
        try expectSame(backward, expected.reversed(), check, "\(context): reverse scan of everything")
    }

    func expectSame(_ got: [KeyValue], _ expected: [KeyValue], _ check: String, _ context: String) throws {
        if got == expected { return }
        var detail = "\(got.count) entries, expected \(expected.count)"
        for i in 0..<min(got.count, expected.count) where got[i] != expected[i] {
            detail += "; first difference at #\(i): got \(hex(got[i].key)) = \(describe(got[i].value)), expected \(hex(expected[i].key)) = \(describe(expected[i].value))"
            break
        }
        throw fail(check, "\(context): \(detail)")
    }

    func sortedEntries(_ model: [[UInt8]: [UInt8]]) -> [KeyValue] {
        model.map { KeyValue(key: $0.key, value: $0.value) }.sorted { $0.key.lexicographicallyPrecedes($1.key) }
    }

    func expectEngineError(_ kind: EngineError.Kind, _ check: String, _ what: String, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let e as EngineError {
            try expect(e.kind == kind, check, "\(what): threw \(e), expected kind \(kind)")
            try expect(e.engine == engineName, check, "\(what): error names engine '\(e.engine)', expected '\(engineName)'")
            return
        }
        throw fail(check, "\(what): did not throw, expected EngineError kind \(kind)")
    }
}

/// A conformance check that failed: which engine, which check, what was wrong.
public struct ConformanceFailure: Error, CustomStringConvertible, Sendable {
    public var engine: String
    public var check: String
    public var message: String
    public var description: String { "\(engine) conformance check \(check) failed: \(message)" }
}

/// A small, fast, seedable generator (SplitMix64) so failing data can be reproduced.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func bytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var word = next()
            for _ in 0..<8 where i < count {
                out[i] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                i += 1
            }
        }
        return out
    }
}

func hex(_ bytes: [UInt8], limit: Int = 24) -> String {
    let digits = Array("0123456789abcdef")
    var s = "0x"
    for b in bytes.prefix(limit) {
        s.append(digits[Int(b >> 4)])
        s.append(digits[Int(b & 15)])
    }
    if bytes.count > limit { s += "…(\(bytes.count) bytes)" }
    if bytes.isEmpty { s = "<empty>" }
    return s
}

func describe(_ value: [UInt8]?) -> String {
    guard let value else { return "nil" }
    return hex(value, limit: 12)
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
