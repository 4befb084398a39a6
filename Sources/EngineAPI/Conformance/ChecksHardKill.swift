/// The numbers of one hard-kill run.
public struct KillTestReport: Sendable, CustomStringConvertible {
    public var killPoints = 0
    /// Kills that hit before the writer reported "ready" (during start-up, open or recovery).
    public var killsBeforeReady = 0
    /// Batches acknowledged by the writer over all rounds (each verified after every later kill).
    public var batchesAcknowledged = 0
    /// Sum over rounds of the acknowledged batches verified present and complete.
    public var acknowledgedBatchVerifications = 0
    /// Batches found complete after a kill although their acknowledgement was never printed.
    public var unacknowledgedBatchesFound = 0
    public var seconds = 0.0

    public var description: String {
        "\(killPoints) kill points (\(killsBeforeReady) before the writer was ready), \(batchesAcknowledged) acknowledged batches, \(acknowledgedBatchVerifications) acknowledged-batch verifications, \(unacknowledgedBatchesFound) unacknowledged batches found complete, no partial batch, \(format2(seconds)) s"
    }
}

func format2(_ x: Double) -> String {
    let hundredths = Int((x * 100).rounded())
    return "\(hundredths / 100).\(pad(hundredths % 100, 2))"
}

extension EngineConformance {
    /// Durability across SIGKILL: `engine-kill-writer` writes batches with `sync: true` and
    /// prints "ack N" after each write returns; it is killed at `killPoints` random moments
    /// (some during start-up and open, most while writing). After every kill the store is
    /// reopened here: every acknowledged batch must be present and complete, no batch partial.
    @discardableResult
    public func checkDurabilityAcrossHardKill() throws -> KillTestReport {
        let check = "durabilityAcrossHardKill"
        guard let executable = killWriterExecutable, PosixFiles.exists(executable) else {
            throw fail(check, "engine-kill-writer not found at \(killWriterExecutable ?? "(not given)"); build it (`swift build --product engine-kill-writer`) or set RUSD_ENGINE_KILL_WRITER")
        }
        return try withDirectory(check) { dir in
            var rng = random(12)
            var report = KillTestReport()
            var highestAcked = -1
            let started = monotonicMilliseconds()
            for round in 0..<killPoints {
                let child = try ChildProcess(executable: executable, arguments: [engineName, dir])
                let spawned = monotonicMilliseconds()
                var lines: [String]
                let killEarly = rng.next() % 5 == 0
                if killEarly {
                    lines = child.readLines(until: spawned + Double(rng.next() % 30))
                } else {
                    lines = child.readLines(until: spawned + 20_000) { $0.hasPrefix("ready") }
                    guard lines.contains(where: { $0.hasPrefix("ready") }) else {
                        child.killHard()
                        child.waitForExit()
                        throw fail(check, "round \(round): the writer did not become ready within 20 s; it printed \(lines + child.drainLines())")
                    }
                    lines += child.readLines(until: monotonicMilliseconds() + Double(5 + rng.next() % 70))
                }
                child.killHard()
                child.waitForExit()
                lines += child.drainLines()
                if !child.wasKilledBySIGKILL {
                    throw fail(check, "round \(round): the writer exited by itself (wait status \(child.exitStatus)) before the kill; output: \(lines.suffix(5))")
                }
                if !lines.contains(where: { $0.hasPrefix("ready") }) { report.killsBeforeReady += 1 }
                for line in lines where line.hasPrefix("ack ") {
                    if let n = Int(line.dropFirst(4)) {
                        highestAcked = max(highestAcked, n)
                        report.batchesAcknowledged += 1
                    }
                }
                if let error = lines.first(where: { $0.hasPrefix("error") }) {
                    throw fail(check, "round \(round): the writer reported \(error)")
                }

                let engine = try open(dir, EngineOptions())
                defer { try? engine.close() }
                let highestPresent: Int
                do {
                    highestPresent = try KillWriterProtocol.verify(engine)
                } catch let e as KillTestInconsistency {
                    throw fail(check, "after kill #\(round + 1): \(e.message)")
                }
                try expect(highestPresent >= highestAcked, check,
                           "after kill #\(round + 1): batch \(highestAcked) was acknowledged but only batches up to \(highestPresent) are present")
                report.acknowledgedBatchVerifications += highestAcked + 1
                report.unacknowledgedBatchesFound += highestPresent - highestAcked
                highestAcked = highestPresent  // present batches are durable from here on
                try engine.close()
                report.killPoints += 1
            }
            report.seconds = (monotonicMilliseconds() - started) / 1000
            log("\(engineName): hard-kill durability: \(report)")
            return report
        }
    }
}
