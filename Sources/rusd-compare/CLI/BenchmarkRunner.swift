import Foundation

/// Runs every selected workload against every target, interleaved round by round
/// (workload W: round 1 A,B,C; round 2 A,B,C; ...), each run on a fresh server and data dir.
struct BenchmarkRunner: Sendable {
    var targets: [TargetSpec]
    var workloads: [any Workload]
    var rounds: Int
    var quick: Bool
    var etcdctlBinary: String
    var clientFactory: (any EtcdClientFactory)?
    var launcher: ServerLauncher
    var progress: ProgressReporter

    func run() async -> [Measurement] {
        var measurements: [Measurement] = []
        for workload in workloads {
            progress.note("== \(workload.name): \(workload.summary)")
            var skipReason: String?
            if workload.needsPersistentClient && clientFactory == nil {
                skipReason = "needs a persistent client (run without --client none)"
            } else if quick && !workload.runsInQuickMode {
                skipReason = "too long for --quick"
            }
            if let skipReason {
                progress.note("   skipped: \(skipReason)")
                for target in targets {
                    measurements.append(Measurement(workload: workload.name, target: target.name, round: 0,
                                                    status: .skipped, note: skipReason, metrics: [:], latency: [:]))
                }
                continue
            }
            for round in 1...rounds {
                for target in targets {
                    progress.note("-- \(workload.name) round \(round)/\(rounds) on \(target.name)")
                    let measurement = await runOne(workload, on: target, round: round)
                    if measurement.status != .ok { progress.note("   \(measurement.status.rawValue): \(measurement.note ?? "")") }
                    measurements.append(measurement)
                }
            }
        }
        return measurements
    }

    private func runOne(_ workload: any Workload, on target: TargetSpec, round: Int) async -> Measurement {
        var measurement = Measurement(workload: workload.name, target: target.name, round: round,
                                      status: .ok, note: nil, metrics: [:], latency: [:])
        var context = WorkloadContext(spec: target, server: nil, etcdctlBinary: etcdctlBinary,
                                      clientFactory: clientFactory, quick: quick, launcher: launcher, progress: progress)
        if (workload.needsCluster && !target.isCluster) || (workload.managesOwnServer && target.isCluster) {
            measurement.status = .skipped
            measurement.note = workload.needsCluster ? "needs a cluster target (--clusters)" : "not run on cluster targets"
            return measurement
        }
        if workload.managesOwnServer {
            if target.isExternal {
                measurement.status = .skipped
                measurement.note = "needs a server this tool starts"
                return measurement
            }
            do {
                let result = try await workload.run(context)
                measurement.metrics = result.metrics
                measurement.latency = result.latency
                measurement.note = result.note
            } catch {
                measurement.status = .failed
                measurement.note = "\(error)"
            }
            return measurement
        }

        let server: RunningServer
        do {
            server = try launcher.start(target)
        } catch {
            measurement.status = .failed
            measurement.note = "could not start: \(error)"
            return measurement
        }
        defer {
            launcher.stop(server)
            launcher.discard(server)
        }
        context.server = server
        if let ms = server.startupMs { measurement.metrics[MetricName.startupMs] = ms }
        context.measurementWindow = MeasurementWindow(pid: server.pid, endpoint: server.endpoint)
        let result: WorkloadResult
        do {
            result = try await workload.run(context)
        } catch {
            measurement.status = .failed
            measurement.note = "\(error)"
            return measurement
        }
        measurement.metrics.merge(result.metrics) { _, new in new }
        measurement.latency = result.latency
        if let note = result.note { measurement.note = note }
        if let fsyncBefore = context.measurementWindow.startFsyncs, let fsyncAfter = FsyncCounter.read(endpoint: server.endpoint) {
            measurement.metrics[MetricName.fsyncCount] = fsyncAfter - fsyncBefore
        }
        if let pid = server.pid, let before = context.measurementWindow.start, let after = ProcessStats.read(pid: pid) {
            let cpu = after.cpuSeconds - before.cpuSeconds
            measurement.metrics[MetricName.serverCPUSeconds] = cpu
            if result.operations > 0 {
                measurement.metrics[MetricName.cpuPerKiloOp] = cpu * 1e6 / Double(result.operations)
            }
            measurement.metrics[MetricName.peakRSS] = Double(after.peakRSSBytes)
            measurement.metrics[MetricName.finalRSS] = Double(after.rssBytes)
            let written = after.writeBytes - before.writeBytes
            measurement.metrics[MetricName.bytesWritten] = Double(written)
            if result.logicalBytesWritten > 0 {
                measurement.metrics[MetricName.logicalBytes] = Double(result.logicalBytesWritten)
                measurement.metrics[MetricName.writeAmplification] = Double(written) / Double(result.logicalBytesWritten)
            }
        }
        if let dataDir = server.dataDir {
            measurement.metrics[MetricName.diskBytes] = Double(diskUsageBytes(of: dataDir))
            do {
                try context.etcdctl.compactAndDefragment()
                measurement.metrics[MetricName.diskBytesAfterDefrag] = Double(diskUsageBytes(of: dataDir))
            } catch {
                measurement.note = [measurement.note, "compact+defrag failed: \(error)"].compactMap { $0 }.joined(separator: "; ")
            }
        }
        return measurement
    }
}
