import ArgumentParser
import EngineAPI
import Engines
import Foundation

/// `rusd-compare engines`: the storage engines compared directly, through the `Engines`
/// registry, without gRPC or the server.
struct EnginesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engines",
        abstract: "Benchmark the storage engines directly (no gRPC): puts, gets, scans, delete + reclaim.",
        discussion: """
        Opens every engine in a fresh directory under --work-dir and runs each phase on one engine \
        after the other: --keys puts of 256-byte values under 17-byte revision-ordered keys in synced \
        batches of 100, --sync-puts puts in synced batches of 1, random point gets, forward and \
        reverse scans of --scan-length keys, and deleting the oldest half followed by reclaimSpace(). \
        Prints a Markdown table and writes reports/YYYY-MM-DD-<host>-engines.{md,json}.
        """)

    @Option(help: "Comma-separated engines, from: \(Engines.registry.names.joined(separator: ", ")).")
    var engines: String = Engines.registry.names.joined(separator: ",")

    @Option(help: "Puts in the load phase (batches of 100, synced).")
    var keys: Int?

    @Option(help: "Puts in synced batches of 1.")
    var syncPuts: Int?

    @Option(help: "Random point gets.")
    var gets: Int?

    @Option(help: "Forward scans.")
    var scans: Int?

    @Option(help: "Reverse scans.")
    var reverseScans: Int?

    @Option(help: "Keys per scan.")
    var scanLength: Int = 10_000

    @Option(help: "Block/page cache per engine (EngineOptions.cacheBytes), MiB.")
    var cacheMiB: Int = EngineOptions().cacheBytes >> 20

    @Option(help: "Folder for the engines' data directories (use a real disk, not tmpfs).")
    var workDir: String = "/var/tmp"

    @Option(help: "Folder for the report files.")
    var out: String = "reports"

    @Flag(help: "A ~30 s smoke run: 50,000 keys, 500 synced puts, 50,000 gets, 20 + 5 scans.")
    var quick = false

    func run() throws {
        let names = engines.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        for n in names where !Engines.registry.names.contains(n) {
            throw ValidationError("unknown engine '\(n)'; valid engines: \(Engines.registry.names.joined(separator: ", "))")
        }
        let parameters = EngineBenchParameters(
            keys: keys ?? (quick ? 50_000 : 1_000_000),
            syncPuts: syncPuts ?? (quick ? 500 : 20_000),
            batchSize: 100,
            valueBytes: EngineWorkload.valueBytes,
            keyBytes: EngineWorkload.keyBytes,
            gets: gets ?? (quick ? 50_000 : 200_000),
            scans: scans ?? (quick ? 20 : 100),
            reverseScans: reverseScans ?? (quick ? 5 : 20),
            scanLength: scanLength,
            cacheBytes: cacheMiB << 20,
            writeBufferBytes: EngineOptions().writeBufferBytes,
            quick: quick)
        guard parameters.keys + parameters.syncPuts >= max(parameters.scanLength, 2) else {
            throw ValidationError("--keys + --sync-puts must be at least --scan-length")
        }
        let machine = MachineProbe.collect(workDir: workDir, rusdBinary: nil, etcdBinary: nil, etcdctlBinary: nil)
        let runner = EngineBenchRunner(parameters: parameters, engineNames: names, workDir: workDir)
        try runner.run()
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd"
        formatter.timeZone = TimeZone(identifier: "UTC")
        let date = formatter.string(from: Date())
        var notes = [
            "Single-threaded, one engine at a time per phase; every engine is open (idle) while the others run.",
            "Load and batch-1 puts are synced (fdatasync per batch). Gets and scans check every value they read.",
            "Write amplification = engine-reported bytes written (EngineStats.bytesWrittenSinceOpen) / key+value bytes put; the /proc/self/io column counts bytes the whole process wrote during that engine's put phases (it can include other engines' background work).",
            "Disk = allocated bytes of the engine's directory (du).",
        ]
        if ProcessInfo.processInfo.activeProcessorCount <= 2 {
            notes.append("Measured on a \(ProcessInfo.processInfo.activeProcessorCount)-core machine possibly shared with other work: compare engines within this run, not across runs.")
        }
        let report = EngineBenchReport(date: date, machine: machine, parameters: parameters,
                                       engines: runner.results, notes: notes)
        let markdown = EngineBenchMarkdown.render(report)
        print(markdown)
        let stem = "\(date)-\(machine.hostname)-engines\(quick ? "-quick" : "")"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try ReportWriter.encoder().encode(report).write(to: URL(fileURLWithPath: "\(out)/\(stem).json"))
        try markdown.write(toFile: "\(out)/\(stem).md", atomically: true, encoding: .utf8)
        FileHandle.standardError.write(Data("wrote \(out)/\(stem).md and \(out)/\(stem).json\n".utf8))
        if runner.results.contains(where: { !$0.errors.isEmpty }) { throw ExitCode(2) }
    }
}
