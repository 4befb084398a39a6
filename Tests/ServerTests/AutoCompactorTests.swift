import EtcdServer
import Logging
import Synchronization
import XCTest

/// A clock moved by hand: `advance` runs the timers that fall due, in order, on the caller's
/// thread (a timer a callback schedules runs only if it also falls due).
final class ManualCompactionClock: AutoCompactionClock {
    private struct Timer { let due: Duration; let seq: Int; let body: @Sendable () -> Void }
    private let state = Mutex<(now: Duration, seq: Int, timers: [Timer])>((.zero, 0, []))

    func now() -> Duration { state.withLock { $0.now } }

    func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) {
        state.withLock { s in
            s.seq += 1
            s.timers.append(Timer(due: s.now + delay, seq: s.seq, body: body))
        }
    }

    var pendingTimers: Int { state.withLock { $0.timers.count } }

    func advance(by delta: Duration) {
        let end = state.withLock { $0.now + delta }
        while true {
            let next: Timer? = state.withLock { s in
                guard let i = s.timers.indices.filter({ s.timers[$0].due <= end })
                    .min(by: { (s.timers[$0].due, s.timers[$0].seq) < (s.timers[$1].due, s.timers[$1].seq) }) else { return nil }
                let t = s.timers.remove(at: i)
                s.now = max(s.now, t.due)
                return t
            }
            guard let next else { break }
            next.body()
        }
        state.withLock { $0.now = end }
    }
}

/// etcd's fake RevGetter: every read returns one more than the last (`set(n)`: next read n+1).
final class CountingRevisions: Sendable {
    private let value = Mutex<Int64>(0)
    func read() -> Int64 { value.withLock { $0 += 1; return $0 } }
    func set(_ v: Int64) { value.withLock { $0 = v } }
}

/// Records compaction requests; answers each with the next scripted result (default success).
final class RecordingCompactions: Sendable {
    private let state = Mutex<(requests: [(Int64, Duration)], script: [Result<Void, EtcdError>])>(([], []))
    let clock: ManualCompactionClock
    init(clock: ManualCompactionClock) { self.clock = clock }
    var revisions: [Int64] { state.withLock { $0.requests.map(\.0) } }
    var times: [Duration] { state.withLock { $0.requests.map(\.1) } }
    func script(_ results: [Result<Void, EtcdError>]) { state.withLock { $0.script = results } }
    func compact(_ revision: Int64, _ done: @escaping @Sendable (Result<Void, EtcdError>) -> Void) {
        let now = clock.now()
        let result: Result<Void, EtcdError> = state.withLock { s in
            s.requests.append((revision, now))
            return s.script.isEmpty ? .success(()) : s.script.removeFirst()
        }
        done(result)
    }
}

final class AutoCompactorTests: XCTestCase {
    private func make(_ policy: AutoCompactionPolicy) -> (AutoCompactor, ManualCompactionClock, CountingRevisions, RecordingCompactions) {
        let clock = ManualCompactionClock()
        let revs = CountingRevisions()
        let compactions = RecordingCompactions(clock: clock)
        var logger = Logger(label: "auto-compaction-test")
        logger.logLevel = .critical
        let c = AutoCompactor(policy: policy, clock: clock, logger: logger,
                              currentRevision: { revs.read() }, compact: { compactions.compact($0, $1) })
        return (c, clock, revs, compactions)
    }

    /// etcd's TestPeriodicHourly / TestPeriodicMinutes (v3compactor/periodic_test.go), for
    /// more retentions: one revision read per interval (min(P, 1 h) / 10); the first compaction
    /// comes exactly when P has passed, to revision 1 (the first read); then one compaction every
    /// 10 intervals, to revisions 10, 20, 30, ...
    func testPeriodicMatchesEtcdSchedule() {
        for (name, period) in [("1h", Duration.seconds(3600)), ("30m", .seconds(1800)), ("10m", .seconds(600)),
                               ("5m", .seconds(300)), ("2h", .seconds(7200)), ("24h", .seconds(86400))] {
            let (compactor, clock, _, compactions) = make(.periodic(period))
            let interval = AutoCompactionSchedule(policy: .periodic(period), now: .zero).interval
            XCTAssertEqual(interval, min(period, .seconds(3600)) / 10, name)
            compactor.start()
            var steps = 0
            while clock.now() + interval < period {
                clock.advance(by: interval)
                steps += 1
            }
            XCTAssertEqual(compactions.revisions, [], "\(name): nothing before one retention (\(steps) intervals)")
            clock.advance(by: interval)
            XCTAssertEqual(compactions.revisions, [1], "\(name): first compaction once \(period) passed")
            XCTAssertEqual(compactions.times, [period], name)
            for i in 1 ... 4 {
                for _ in 0 ..< 10 { clock.advance(by: interval) }
                XCTAssertEqual(compactions.revisions.last, Int64(i * 10), "\(name): compaction \(i + 1)")
                XCTAssertEqual(compactions.revisions.count, i + 1, name)
            }
            compactor.stop()
        }
    }

    /// A failed compaction is retried one interval later with the window moved on (etcd keeps
    /// lastSuccess); "already compacted" counts as success.
    func testPeriodicRetryAfterFailure() {
        let (compactor, clock, _, compactions) = make(.periodic(.seconds(600)))
        compactions.script([.failure(.timeout), .failure(.timeout)])
        compactor.start()
        for _ in 0 ..< 22 { clock.advance(by: .seconds(60)) }
        // t=10m: rev 1 fails; t=11m: rev 1 again (window [1...11]) fails; t=12m: rev 2 succeeds;
        // next due 10 minutes later, t=22m: the window then holds the reads of t=12m...21m.
        XCTAssertEqual(compactions.revisions, [1, 1, 2, 12])
        XCTAssertEqual(compactions.times, [600, 660, 720, 1320].map { Duration.seconds($0) })
        compactor.stop()

        let (c2, clock2, _, compactions2) = make(.periodic(.seconds(600)))
        compactions2.script([.failure(.compacted)])
        c2.start()
        for _ in 0 ..< 20 { clock2.advance(by: .seconds(60)) }
        XCTAssertEqual(compactions2.revisions, [1, 10])
        c2.stop()
    }

    /// etcd's TestRevision: every 5 minutes, current − retention when positive and new.
    func testRevisionMatchesEtcd() {
        let (compactor, clock, revs, compactions) = make(.revision(10))
        compactor.start()
        clock.advance(by: .seconds(300))
        XCTAssertEqual(compactions.revisions, [], "revision 1 − 10 is not positive")
        revs.set(99)
        clock.advance(by: .seconds(299))
        XCTAssertEqual(compactions.revisions, [], "not before 5 minutes")
        clock.advance(by: .seconds(1))
        XCTAssertEqual(compactions.revisions, [90])
        revs.set(99)
        clock.advance(by: .seconds(300))
        XCTAssertEqual(compactions.revisions, [90], "the same revision is skipped")
        revs.set(199)
        clock.advance(by: .seconds(300))
        XCTAssertEqual(compactions.revisions, [90, 190])
        // A failure is retried next period (the target is not remembered as done).
        compactions.script([.failure(.timeout)])
        revs.set(299)
        clock.advance(by: .seconds(300))
        revs.set(299)
        clock.advance(by: .seconds(300))
        XCTAssertEqual(compactions.revisions, [90, 190, 290, 290])
        compactor.stop()
        revs.set(999)
        clock.advance(by: .seconds(900))
        XCTAssertEqual(compactions.revisions, [90, 190, 290, 290], "nothing after stop")
        XCTAssertEqual(clock.pendingTimers, 0)
    }

    /// embed.parseCompactionRetention: bare integers are hours (periodic) or revisions.
    func testParse() throws {
        let durations: [String: Duration] = ["30m": .seconds(1800), "1h30m": .seconds(5400), "2s": .seconds(2), "-1h": .seconds(-3600)]
        func parse(_ mode: String, _ text: String) throws -> AutoCompactionPolicy? {
            try AutoCompactionPolicy.parse(mode: mode, retention: text, parseDuration: { durations[$0] })
        }
        XCTAssertEqual(try parse("periodic", "1"), .periodic(.seconds(3600)))
        XCTAssertEqual(try parse("periodic", "30m"), .periodic(.seconds(1800)))
        XCTAssertEqual(try parse("periodic", "1h30m"), .periodic(.seconds(5400)))
        XCTAssertEqual(try parse("revision", "10"), .revision(10))
        XCTAssertEqual(try parse("revision", "2s"), .revision(2_000_000_000), "etcd counts a duration's nanoseconds")
        XCTAssertNil(try parse("periodic", "0"))
        XCTAssertNil(try parse("revision", ""))
        XCTAssertThrowsError(try parse("periodic", "abc")) {
            XCTAssertEqual("\($0)", "error parsing CompactionRetention: time: invalid duration \"abc\"")
        }
        XCTAssertThrowsError(try parse("periodic", "-1h"))
        XCTAssertThrowsError(try parse("periodic", "9223372036854775807"))
        XCTAssertThrowsError(try parse("hourly", "1")) { XCTAssertEqual("\($0)", "unknown auto-compaction-mode \"hourly\"") }
    }

    func testGoDurationString() {
        XCTAssertEqual(goDurationString(.seconds(3600)), "1h0m0s")
        XCTAssertEqual(goDurationString(.seconds(1800)), "30m0s")
        XCTAssertEqual(goDurationString(.seconds(2)), "2s")
        XCTAssertEqual(goDurationString(.milliseconds(1500)), "1.5s")
        XCTAssertEqual(goDurationString(.milliseconds(250)), "250ms")
        XCTAssertEqual(goDurationString(.microseconds(1500)), "1.5ms")
        XCTAssertEqual(goDurationString(.seconds(5400) + .milliseconds(5)), "1h30m0.005s")
        XCTAssertEqual(goDurationString(.zero), "0s")
    }
}
