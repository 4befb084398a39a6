import Foundation

/// The Markdown of an engine benchmark run: machine, parameters, one column per engine.
enum EngineBenchMarkdown {
    static func render(_ r: EngineBenchReport) -> String {
        let p = r.parameters
        let m = r.machine
        var s = "# Engine benchmark, \(r.date), \(m.hostname)\(p.quick ? " (quick)" : "")\n\n"
        s += "Machine: \(m.cpuModel), \(m.cores) cores, \(String(format: "%.1f", Double(m.memoryBytes) / Double(1 << 30))) GiB, \(m.kernel); "
        s += "work dir \(m.workDir) (\(m.workDirFilesystem)); fdatasync of 4 KiB p50 \(String(format: "%.2f", m.fdatasyncP50Ms)) ms, p99 \(String(format: "%.2f", m.fdatasyncP99Ms)) ms.\n\n"
        s += "Workload: \(count(p.keys)) puts of \(p.valueBytes)-byte values under \(p.keyBytes)-byte revision-ordered keys in synced batches of \(p.batchSize); "
        s += "\(count(p.syncPuts)) puts in synced batches of 1; \(count(p.gets)) uniformly random point gets; "
        s += "\(p.scans) forward and \(p.reverseScans) reverse scans of \(count(p.scanLength)) keys; delete of the oldest half + reclaimSpace(). "
        s += "Cache \(p.cacheBytes >> 20) MiB, write buffer \(p.writeBufferBytes >> 20) MiB per engine.\n\n"
        s += "| | " + r.engines.map(\.engine).joined(separator: " | ") + " |\n"
        s += "|---|" + r.engines.map { _ in "---:|" }.joined() + "\n"
        func row(_ title: String, _ f: (EngineBenchResult) -> String) {
            s += "| \(title) | " + r.engines.map(f).joined(separator: " | ") + " |\n"
        }
        row("puts, batch \(p.batchSize), synced") { rate($0.load) }
        row("puts, batch 1, synced") { rate($0.syncPuts) }
        row("random point gets") { rate($0.gets) }
        row("\(count(p.scanLength))-key scans, forward") { rate($0.scans) }
        row("\(count(p.scanLength))-key scans, reverse") { rate($0.reverseScans) }
        row("write amplification (engine count)") { String(format: "%.2f", $0.writeAmplification) }
        row("write amplification (/proc/self/io)") { String(format: "%.2f", $0.procWriteAmplification) }
        row("disk after puts") { bytes($0.diskBytesAfterLoad) }
        row("delete oldest half + reclaimSpace") { $0.deleteAndReclaim.map { String(format: "%.1f s", $0.seconds) } ?? "-" }
        row("disk after delete + reclaim") { bytes($0.diskBytesAfterReclaim) }
        row("errors") { $0.errors.isEmpty ? "none" : $0.errors.joined(separator: "; ") }
        s += "\n"
        for n in r.notes { s += "- \(n)\n" }
        return s
    }

    static func rate(_ phase: PhaseResult?) -> String {
        guard let phase, phase.seconds > 0 else { return "-" }
        let v = phase.opsPerSecond
        if v >= 100_000 { return String(format: "%.0fk/s", v / 1000) }
        if v >= 10_000 { return String(format: "%.1fk/s", v / 1000) }
        if v >= 100 { return String(format: "%.0f/s", v) }
        return String(format: "%.1f/s", v)
    }

    static func bytes(_ b: Int64) -> String {
        if b >= 1 << 30 { return String(format: "%.2f GiB", Double(b) / Double(1 << 30)) }
        return String(format: "%.1f MiB", Double(b) / Double(1 << 20))
    }

    static func count(_ n: Int) -> String {
        let f = NumberFormatter()
        f.numberStyle = .decimal
        f.groupingSeparator = ","
        return f.string(from: NSNumber(value: n)) ?? "\(n)"
    }
}
