import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A named benchmark. The runner starts a fresh server per run (unless `managesOwnServer`),
/// measures the server process around `run`, then compacts, defragments and measures the disk.
protocol Workload: Sendable {
    var name: String { get }
    /// One line for `rusd-compare list` and the report.
    var summary: String { get }
    /// Whether it needs the persistent gRPC client (`EtcdClientFactory`) or only etcdctl.
    var needsPersistentClient: Bool { get }
    /// True when the workload starts and stops servers itself (startup time).
    var managesOwnServer: Bool { get }
    /// False for workloads too long for a `--quick` smoke run (reported as skipped there).
    var runsInQuickMode: Bool { get }
    /// False for workloads that run only when named in `--workloads` (hours at full size).
    var runsByDefault: Bool { get }
    /// True for workloads that need a cluster target (others are skipped for them).
    var needsCluster: Bool { get }
    func run(_ context: WorkloadContext) async throws -> WorkloadResult
}

extension Workload {
    var managesOwnServer: Bool { false }
    var runsInQuickMode: Bool { true }
    var runsByDefault: Bool { true }
    var needsCluster: Bool { false }
}

struct WorkloadContext: Sendable {
    var spec: TargetSpec
    /// The server started for this run (nil when `managesOwnServer`).
    var server: RunningServer?
    var etcdctlBinary: String
    var clientFactory: (any EtcdClientFactory)?
    var quick: Bool
    var launcher: ServerLauncher
    var progress: ProgressReporter
    /// Where the server measurements (CPU, RSS peak, bytes written) start; a workload with a
    /// setup phase calls `restart()` when its measured phase begins.
    var measurementWindow = MeasurementWindow(pid: nil)

    var etcdctl: Etcdctl { Etcdctl(binary: etcdctlBinary, endpoint: server?.endpoint ?? "") }

    /// A connected persistent client (throws when none is available).
    func connect() async throws -> any EtcdClient {
        guard let factory = clientFactory, let server else {
            throw SubprocessError(description: "no persistent client available")
        }
        return try await factory.connect(endpoint: server.endpoint)
    }

    /// Connects `count` clients (workers each use their own connection).
    func connect(count: Int) async throws -> [any EtcdClient] {
        var clients: [any EtcdClient] = []
        for _ in 0..<count { clients.append(try await connect()) }
        return clients
    }
}

/// What a workload measured; the runner adds the process and disk metrics.
struct WorkloadResult: Sendable {
    var metrics: [String: Double] = [:]
    var latency: [String: LatencySummary] = [:]
    /// Key + value bytes the workload asked the server to store (for write amplification).
    var logicalBytesWritten: Int64 = 0
    /// Requests issued (for CPU per request).
    var operations: Int = 0
    var note: String?
}

/// Every workload, in report order.
enum WorkloadCatalog {
    static let all: [any Workload] = [
        EtcdctlMicroWorkload(),
        ClientMicroWorkload(),
        ConcurrentWorkload(kind: .put),
        ConcurrentWorkload(kind: .range),
        ConcurrentWorkload(kind: .txn),
        ConcurrentWorkload(kind: .putLarge),
        KubernetesScenariosWorkload(),
        KubernetesChurnWorkload(),
        WatchFanoutWorkload(),
        CheckPerfWorkload(),
        EtcdctlCheckPerfWorkload(),
        StartupWorkload(),
        SnapshotWorkload(),
        SweepWorkload(),
        FailoverWorkload(),
    ]

    static func named(_ name: String) -> (any Workload)? { all.first { $0.name == name } }
}

/// The server-side measurement baseline of one run: process stats and the fsync counter.
final class MeasurementWindow: Sendable {
    let pid: pid_t?
    let endpoint: String?
    private let baseline: Mutex<(stats: ProcessStats?, fsyncs: Double?)>

    init(pid: pid_t?, endpoint: String? = nil) {
        self.pid = pid
        self.endpoint = endpoint
        baseline = Mutex((nil, nil))
        restart()
    }

    /// Resets the peak RSS and takes a new baseline reading now.
    func restart() {
        guard let pid else { return }
        ProcessStats.resetPeakRSS(pid: pid)
        let stats = ProcessStats.read(pid: pid)
        let fsyncs = endpoint.flatMap { FsyncCounter.read(endpoint: $0) }
        baseline.withLock { $0 = (stats, fsyncs) }
    }

    var start: ProcessStats? { baseline.withLock { $0.stats } }
    var startFsyncs: Double? { baseline.withLock { $0.fsyncs } }
}
