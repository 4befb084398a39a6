import ArgumentParser
import Foundation

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the workloads and write a report.")

    @Option(help: "Path to the rusd binary (default: next to this tool, then PATH).")
    var rusd: String?

    @Flag(help: "Do not start rusd even when one is found.")
    var noRusd = false

    @Option(help: "Comma-separated rusd engines to compare (default: those of the known engines (lmdb, leveldb, lsm, sqlite, ...) that `rusd --version` lists).")
    var engines: String?

    @Option(help: "Path to etcd (default: etcd on PATH).")
    var etcd: String = "etcd"

    @Flag(help: "Do not start etcd even when one is found.")
    var noEtcd = false

    @Option(help: "Path to etcdctl.")
    var etcdctl: String = "etcdctl"

    @Option(name: .customLong("endpoint"), help: "An already running server, NAME=http://HOST:PORT (repeatable).")
    var endpoints: [String] = []

    @Flag(help: "Also compare three-member clusters on loopback: rusd-cluster (three rusd members on --cluster-engine sharing one log in PostgreSQL, synchronous_commit on) and etcd-cluster (three etcd processes, Raft, fsync on). Clients talk to one member: etcd's leader, rusd's m1.")
    var clusters = false

    @Option(help: "rusd-cluster's members' engine (default lmdb).")
    var clusterEngine: String = "lmdb"

    @Option(help: "rusd-cluster: an existing PostgreSQL database (postgres://user@host:port/db) instead of a scratch one started here; its rusd_* tables are dropped before each run.")
    var postgres: String?

    @Flag(help: "With --clusters: rusd-cluster twice, with --cluster-local-fsync=true and =false (targets rusd-cluster-localfsync, rusd-cluster-nolocalfsync).")
    var compareLocalFsync = false

    @Option(name: .customLong("targets"), help: "Comma-separated target names to run, of those found (e.g. rusd-cluster,etcd-cluster; default: all).")
    var targetNames: String?

    @Option(help: "Rounds per workload and target (default 3; 1 with --quick).")
    var rounds: Int?

    @Flag(help: "A smoke run of about a minute: small sizes, short phases.")
    var quick = false

    @Option(help: "Comma-separated workloads (see `rusd-compare list`; default: all but sweep).")
    var workloads: String?

    @Option(help: "Store sizes of the sweep workload, comma-separated key counts (default 10000,100000,1000000,10000000; 10000,100000 with --quick).")
    var sweepSizes: String?

    @Flag(help: "Run every server without fsync (rusd and etcd's --unsafe-no-fsync, where supported).")
    var unsafeNoFsync = false

    @Option(help: "Client for the client workloads: grpc (persistent connections), etcdctl (one process per request, to check workloads), none.")
    var client: String = "grpc"

    @Option(help: "Folder for the report.")
    var out: String = "reports"

    @Option(help: "Folder for the servers' temporary data dirs (must be on the disk you want to measure).")
    var workDir: String = "/var/tmp"

    static let knownEngines = ["lmdb", "leveldb", "lsm", "sqlite", "rocksdb"]

    func validate() throws {
        if let rounds, rounds < 1 { throw ValidationError("--rounds must be at least 1 (got \(rounds))") }
        if let names = workloads {
            for name in names.split(separator: ",").map(String.init) where WorkloadCatalog.named(name) == nil {
                throw ValidationError("unknown workload \"\(name)\"; known: \(WorkloadCatalog.all.map(\.name).joined(separator: ", "))")
            }
        }
        for engine in engineList where !Self.knownEngines.contains(engine) {
            throw ValidationError("unknown engine \"\(engine)\"; known: \(Self.knownEngines.joined(separator: ", "))")
        }
        for endpoint in endpoints { _ = try Self.parseEndpoint(endpoint) }
        if !Self.knownEngines.contains(clusterEngine) {
            throw ValidationError("unknown --cluster-engine \"\(clusterEngine)\"; known: \(Self.knownEngines.joined(separator: ", "))")
        }
        if let postgres, !(postgres.hasPrefix("postgres://") || postgres.hasPrefix("postgresql://")) {
            throw ValidationError("--postgres must be a postgres:// URL (got \"\(postgres)\")")
        }
        if (compareLocalFsync || postgres != nil) && !clusters {
            throw ValidationError("--compare-local-fsync and --postgres need --clusters")
        }
        if let sweepSizes { _ = try SweepWorkload.parseSizes(sweepSizes) }
        if !ClientFactories.choices.contains(client) {
            throw ValidationError("--client must be one of \(ClientFactories.choices.joined(separator: ", ")) (got \"\(client)\")")
        }
    }

    var engineList: [String] {
        (engines ?? Self.knownEngines.joined(separator: ",")).split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// Engines named on the "Engines: a, b" line of `rusd --version`, if any.
    static func enginesBuiltInto(_ rusd: String) -> [String]? {
        guard let out = try? Subprocess.run(rusd, ["--version"]), out.succeeded else { return nil }
        for line in out.stdout.split(separator: "\n") where line.hasPrefix("Engines:") {
            return line.dropFirst("Engines:".count).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        return nil
    }

    static func parseEndpoint(_ text: String) throws -> (String, String) {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty,
              let url = URL(string: parts[1]), url.scheme == "http", url.host != nil, url.port != nil else {
            throw ValidationError("--endpoint must be NAME=http://HOST:PORT (got \"\(text)\")")
        }
        return (parts[0], parts[1])
    }

    func run() async throws {
        ChildProcessRegistry.shared.installSignalHandlers()
        // Fail now, not after an hour of benchmarks, when the report cannot be written.
        do {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        } catch {
            throw ValidationError("--out \(out): cannot create the report folder: \(error.localizedDescription)")
        }
        guard access(out, W_OK) == 0 else { throw ValidationError("--out \(out): not writable") }
        let progress = ProgressReporter()
        let startedAt = Date()
        guard let etcdctlPath = Subprocess.resolveExecutable(etcdctl) else {
            throw ValidationError("etcdctl not found (\(etcdctl)); it is the readiness probe and the independent client")
        }
        var notes: [String] = []
        var targets: [TargetSpec] = []
        let rusdPath = noRusd ? nil : Self.findRusd(rusd)
        if let rusd, !noRusd, rusdPath == nil { throw ValidationError("--rusd \(rusd): not an executable") }
        if let rusdPath {
            let version = MachineProbe.firstLine(of: rusdPath, ["--version"])?.replacingOccurrences(of: "rusd Version: ", with: "")
            var selectedEngines = engineList
            if engines == nil, let builtIn = Self.enginesBuiltInto(rusdPath) {
                let missing = selectedEngines.filter { !builtIn.contains($0) }
                if !missing.isEmpty {
                    notes.append("This rusd has no \(missing.joined(separator: ", ")) engine (`rusd --version` lists \(builtIn.joined(separator: ", "))): not compared.")
                }
                selectedEngines = selectedEngines.filter { builtIn.contains($0) }
            }
            if rusdPath.contains("/debug/") {
                notes.append("The rusd binary (\(rusdPath)) is a debug build: its numbers are not representative.")
            }
            for engine in selectedEngines {
                targets.append(TargetSpec(info: TargetInfo(name: "rusd-\(engine)", kind: .rusd, binary: rusdPath,
                                                           binarySizeBytes: fileSize(rusdPath), version: version, engine: engine,
                                                           endpoint: nil, durability: unsafeNoFsync ? "unsafe-no-fsync" : "fsync"),
                                          launch: .rusd(binary: rusdPath, engine: engine), unsafeNoFsync: unsafeNoFsync))
            }
        } else if !noRusd {
            notes.append("rusd not found (no --rusd, none next to this tool or on PATH): only etcd and endpoints were compared.")
        }
        let etcdPath = noEtcd ? nil : Subprocess.resolveExecutable(etcd)
        if !noEtcd && etcdPath == nil {
            if etcd != "etcd" { throw ValidationError("--etcd \(etcd): not an executable") }
            notes.append("etcd not found on PATH: not compared.")
        }
        if let etcdPath {
            let help = (try? Subprocess.run(etcdPath, ["--help"]))
            let supportsNoFsync = ((help?.stdout ?? "") + (help?.stderr ?? "")).contains("--unsafe-no-fsync")
            var durability = "fsync"
            if unsafeNoFsync {
                durability = supportsNoFsync ? "unsafe-no-fsync" : "fsync (this etcd has no --unsafe-no-fsync)"
                if !supportsNoFsync { notes.append("This etcd has no --unsafe-no-fsync flag (added in 3.5): it ran with fsync.") }
            }
            let version = MachineProbe.firstLine(of: etcdPath, ["--version"])?.replacingOccurrences(of: "etcd Version: ", with: "")
            targets.append(TargetSpec(info: TargetInfo(name: "etcd", kind: .etcd, binary: etcdPath, binarySizeBytes: fileSize(etcdPath),
                                                       version: version, engine: "bbolt", endpoint: nil, durability: durability),
                                      launch: .etcd(binary: etcdPath, passUnsafeNoFsync: supportsNoFsync), unsafeNoFsync: unsafeNoFsync))
        }
        for endpoint in endpoints {
            let (name, url) = try Self.parseEndpoint(endpoint)
            targets.append(TargetSpec(info: TargetInfo(name: name, kind: .external, binary: nil, binarySizeBytes: nil, version: nil,
                                                       engine: nil, endpoint: url, durability: "as configured"),
                                      launch: .external(url: url), unsafeNoFsync: unsafeNoFsync))
        }
        if clusters {
            targets += clusterTargets(rusdPath: rusdPath, etcdPath: etcdPath, notes: &notes)
        }
        if let targetNames {
            let keep = targetNames.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            for name in keep where !targets.contains(where: { $0.name == name }) {
                throw ValidationError("--targets: no target \"\(name)\" (found: \(targets.map(\.name).joined(separator: ", ")))")
            }
            targets = targets.filter { keep.contains($0.name) }
        }
        guard !targets.isEmpty else { throw ValidationError("nothing to compare: no rusd, no etcd, no --endpoint") }
        if Set(targets.map(\.name)).count != targets.count { throw ValidationError("target names must be unique: \(targets.map(\.name))") }

        let sizes = try sweepSizes.map(SweepWorkload.parseSizes)
        let selected = (workloads.map { $0.split(separator: ",").compactMap { WorkloadCatalog.named(String($0)) } }
            ?? WorkloadCatalog.all.filter(\.runsByDefault))
            .map { $0 is SweepWorkload ? SweepWorkload(sizes: sizes) : $0 }
        let roundCount = rounds ?? (quick ? 1 : 3)
        let factory: (any EtcdClientFactory)?
        do { factory = try ClientFactories.choose(client, etcdctlBinary: etcdctlPath) } catch { throw ValidationError("\(error)") }
        if factory == nil {
            notes.append("--client none: workloads that need a persistent client are reported as skipped.")
        } else if factory is EtcdctlClientFactory {
            notes.append("Client workloads ran with `--client etcdctl`: one etcdctl process per request, so their latencies and throughputs measure etcdctl start-up, not the servers. They check that the workloads run; do not read them as server performance.")
        }
        let workRoot = (workDir as NSString).standardizingPath + "/rusd-compare-\(getpid())"
        try FileManager.default.createDirectory(atPath: workRoot, withIntermediateDirectories: true)
        ChildProcessRegistry.shared.addScratchDirectory(workRoot)
        defer { try? FileManager.default.removeItem(atPath: workRoot) }

        progress.note("rusd-compare: \(targets.map(\.name).joined(separator: ", ")); \(selected.count) workload(s), \(roundCount) round(s)\(quick ? ", quick" : "")")
        progress.note("measuring the machine (fdatasync in \(workRoot)) ...")
        let machine = MachineProbe.collect(workDir: workRoot, rusdBinary: rusdPath, etcdBinary: etcdPath, etcdctlBinary: etcdctlPath)
        let runner = BenchmarkRunner(targets: targets, workloads: selected, rounds: roundCount, quick: quick,
                                     etcdctlBinary: etcdctlPath, clientFactory: factory,
                                     launcher: ServerLauncher(workDir: workRoot, etcdctlBinary: etcdctlPath), progress: progress)
        let measurements = await runner.run()

        var facts = machine
        facts.workDir = (workDir as NSString).standardizingPath
        let report = CompareReport(startedAt: Self.iso(startedAt), finishedAt: Self.iso(Date()),
                                   options: RunOptions(rounds: roundCount, quick: quick, unsafeNoFsync: unsafeNoFsync,
                                                       workloads: selected.map(\.name), client: factory?.name ?? "none"),
                                   machine: facts, targets: targets.map(\.info), measurements: measurements, notes: notes)
        let stem = Self.stem(date: startedAt, host: machine.hostname + (clusters ? "-cluster" : ""), quick: quick)
        let written = try ReportWriter.write(report, directory: out, stem: stem)
        progress.note("\nreport:")
        for path in written { progress.note("  \(path)") }
        print(MarkdownReport(report: report, chartFolder: stem).headlineTable())
    }

    /// --clusters: rusd-cluster (or its two --compare-local-fsync variants) and etcd-cluster.
    func clusterTargets(rusdPath: String?, etcdPath: String?, notes: inout [String]) -> [TargetSpec] {
        var out: [TargetSpec] = []
        if let rusdPath {
            let version = MachineProbe.firstLine(of: rusdPath, ["--version"])?.replacingOccurrences(of: "rusd Version: ", with: "")
            let store = postgres.map { _ in "an existing PostgreSQL" } ?? "a scratch PostgreSQL"
            let variants: [(String, Bool?)] = compareLocalFsync
                ? [("rusd-cluster-localfsync", true), ("rusd-cluster-nolocalfsync", false)] : [("rusd-cluster", nil)]
            for (name, localFsync) in variants {
                let durability = "PostgreSQL synchronous_commit on; members' local fsync "
                    + (localFsync.map { $0 ? "every group" : "at most once a second" } ?? "as rusd's default")
                out.append(TargetSpec(info: TargetInfo(name: name, kind: .rusd, binary: rusdPath, binarySizeBytes: fileSize(rusdPath),
                                                       version: version, engine: "3 x \(clusterEngine) + \(store)",
                                                       endpoint: nil, durability: durability),
                                      launch: .rusdCluster(binary: rusdPath, engines: Array(repeating: clusterEngine, count: 3),
                                                           postgresURL: postgres, localFsync: localFsync),
                                      unsafeNoFsync: false))
            }
        } else {
            notes.append("--clusters: no rusd binary, so no rusd-cluster.")
        }
        if let etcdPath {
            let version = MachineProbe.firstLine(of: etcdPath, ["--version"])?.replacingOccurrences(of: "etcd Version: ", with: "")
            out.append(TargetSpec(info: TargetInfo(name: "etcd-cluster", kind: .etcd, binary: etcdPath, binarySizeBytes: fileSize(etcdPath),
                                                   version: version, engine: "3 x bbolt, Raft", endpoint: nil, durability: "fsync"),
                                  launch: .etcdCluster(binary: etcdPath), unsafeNoFsync: false))
        } else {
            notes.append("--clusters: no etcd binary, so no etcd-cluster.")
        }
        return out
    }

    static func iso(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: date)
    }

    static func stem(date: Date, host: String, quick: Bool) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd"
        f.timeZone = TimeZone(identifier: "UTC")
        f.locale = Locale(identifier: "en_US_POSIX")
        return "\(f.string(from: date))-\(host)\(quick ? "-quick" : "")"
    }

    /// --rusd, else `rusd` next to this executable (same build folder), else PATH.
    static func findRusd(_ explicit: String?) -> String? {
        if let explicit { return Subprocess.resolveExecutable(explicit) }
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let sibling = me.deletingLastPathComponent().appendingPathComponent("rusd").path
        if Subprocess.resolveExecutable(sibling) != nil { return sibling }
        return Subprocess.resolveExecutable("rusd")
    }
}
