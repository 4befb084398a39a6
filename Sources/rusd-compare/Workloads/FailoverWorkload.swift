import Foundation
import Synchronization

/// Cluster targets only: the time from `kill -9` of the member a client talks to until that
/// client's next successful write. The client (`FailoverPutClient`) knows every member's
/// endpoint, starts on the victim, writes one Put after another and moves to the next member
/// when a call fails or takes over 1 s. Two cases, each repeated (1 with --quick, 3 otherwise):
/// the victim is the leader (etcd: the Raft leader; rusd: the member holding the lease-expiry
/// role), or a follower. Measured: kill issued → completion of the first Put issued after it.
/// After each trial the victim is restarted on its data dir and the cluster waits for a leader.
struct FailoverWorkload: Workload {
    let name = "failover"
    let summary = "cluster targets: kill -9 the member a client writes to (leader, then a follower); time until that client's next successful write"
    let needsPersistentClient = true
    let needsCluster = true

    /// No successful write this long after the kill fails the trial.
    static let giveUpSeconds = 30.0

    func run(_ context: WorkloadContext) async throws -> WorkloadResult {
        guard let cluster = context.server?.cluster else { throw SubprocessError(description: "not a cluster target") }
        let trials = context.quick ? 1 : 3
        var result = WorkloadResult()
        var notes: [String] = []
        context.progress.begin("  \(name) on \(context.spec.name)", total: 2 * trials)
        var lines: [String] = []
        for role in ["leader", "follower"] {
            var histogram = LatencyHistogram()
            var times: [Double] = []
            for _ in 0..<trials {
                let leader = try await Self.waitForLeader(cluster)
                let victim = role == "leader" ? leader : (leader + 1) % cluster.members.count
                let ms = try await trial(cluster, victim: victim)
                histogram.record(nanos: UInt64(ms * 1e6))
                times.append(ms)
                try cluster.spawn(victim)
                try cluster.waitReady(victim)
                context.progress.advance()
            }
            result.latency["failover \(role)"] = histogram.summary()
            times.sort()
            result.metrics["failover_\(role)_ms"] = times[times.count / 2]
            result.metrics["failover_\(role)_max_ms"] = times.last ?? 0
            lines.append("\(role) " + times.map { String(format: "%.0f ms", $0) }.joined(separator: ", "))
            result.operations += trials
        }
        notes.append("failover (kill -9 → next successful write): " + lines.joined(separator: "; "))
        result.note = notes.joined(separator: "; ")
        context.progress.finish(lines.joined(separator: "; "))
        return result
    }

    /// Every live member names the same leader (within 30 s): its index.
    static func waitForLeader(_ cluster: RunningCluster) async throws -> Int {
        let deadline = monotonicNanos() + 30_000_000_000
        while monotonicNanos() < deadline {
            if let i = cluster.leaderIndex() { return i }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        throw SubprocessError(description: "the members did not agree on a leader within 30 s")
    }

    /// Writes through a client that starts on `victim`, kills it, and returns the milliseconds
    /// from the kill to the completion of the first Put issued after it.
    private func trial(_ cluster: RunningCluster, victim: Int) async throws -> Double {
        let n = cluster.members.count
        let order = (0..<n).map { cluster.endpoints[(victim + $0) % n] }
        let client = try FailoverPutClient(endpoints: order)
        let trial = TrialClock()
        let value = [UInt8](repeating: 0x66, count: 256)
        let writer = Task {
            var i = 0
            while !trial.stop.load(ordering: .acquiring) {
                let issued = monotonicNanos()
                let ok = await client.put(key: Array("/rusd-compare/failover/\(i % 100)".utf8), value: value)
                i += 1
                if !ok {
                    try? await Task.sleep(nanoseconds: 10_000_000)
                    continue
                }
                let kill = trial.killedAt.load(ordering: .acquiring)
                if kill == 0 {
                    trial.successesBeforeKill.add(1, ordering: .relaxed)
                } else if issued > kill {
                    trial.recovered.store(monotonicNanos(), ordering: .releasing)
                    return
                }
            }
        }
        defer { trial.stop.store(true, ordering: .releasing) }
        // Writes must be flowing to the victim before it is killed.
        let warm = monotonicNanos() + 10_000_000_000
        while trial.successesBeforeKill.load(ordering: .relaxed) < 20 || client.currentMember != 0 {
            if monotonicNanos() > warm {
                writer.cancel()
                await client.close()
                throw SubprocessError(description: "no steady writes to \(cluster.members[victim].name) before the kill")
            }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        let kill = monotonicNanos()
        trial.killedAt.store(kill, ordering: .releasing)
        cluster.kill9(victim)
        let giveUp = kill + UInt64(Self.giveUpSeconds * 1e9)
        while trial.recovered.load(ordering: .acquiring) == 0 && monotonicNanos() < giveUp {
            try await Task.sleep(nanoseconds: 2_000_000)
        }
        trial.stop.store(true, ordering: .releasing)
        _ = await writer.value
        await client.close()
        let done = trial.recovered.load(ordering: .acquiring)
        guard done > 0 else {
            throw SubprocessError(description: "no successful write within \(Int(Self.giveUpSeconds)) s after killing \(cluster.members[victim].name)")
        }
        return Double(done - kill) / 1e6
    }
}

/// What the writer task and the trial share (monotonic nanoseconds; 0 = not yet).
private final class TrialClock: Sendable {
    let killedAt = Atomic<UInt64>(0)
    let recovered = Atomic<UInt64>(0)
    let stop = Atomic<Bool>(false)
    let successesBeforeKill = Atomic<Int>(0)
}
