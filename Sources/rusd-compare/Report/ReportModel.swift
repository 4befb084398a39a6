/// The raw JSON report: everything `rusd-compare report FILE.json` needs to re-render.

/// Latency percentiles of one request kind in one run, in milliseconds.
struct LatencySummary: Codable, Sendable {
    var count: UInt64
    var errors: Int
    var meanMs: Double
    var stddevMs: Double
    var p50Ms: Double
    var p90Ms: Double
    var p99Ms: Double
    var p999Ms: Double
    var maxMs: Double
    /// `[percentile, milliseconds]` pairs, for the CDF chart.
    var cdf: [[Double]]
}

/// One workload run against one target in one round.
struct Measurement: Codable, Sendable {
    enum Status: String, Codable, Sendable { case ok, skipped, failed }
    var workload: String
    var target: String
    var round: Int
    var status: Status
    var note: String?
    /// Named numbers (see `MetricName` for the vocabulary).
    var metrics: [String: Double]
    /// Latency per request kind (e.g. "put", "put c=16", "create").
    var latency: [String: LatencySummary]
}

/// What was compared.
struct TargetInfo: Codable, Sendable {
    enum Kind: String, Codable, Sendable { case rusd, etcd, external }
    var name: String
    var kind: Kind
    var binary: String?
    var binarySizeBytes: Int64?
    var version: String?
    var engine: String?
    var endpoint: String?
    /// How durability was configured ("fsync", "unsafe-no-fsync", or a note).
    var durability: String
}

/// The machine the run happened on.
struct MachineFacts: Codable, Sendable {
    var hostname: String
    var cpuModel: String
    var cores: Int
    var memoryBytes: Int64
    var kernel: String
    var workDir: String
    var workDirFilesystem: String
    var fdatasyncP50Ms: Double
    var fdatasyncP99Ms: Double
    var rusdVersion: String?
    var etcdVersion: String?
    var etcdctlVersion: String?
    var engineLibraries: [String: String]
}

struct RunOptions: Codable, Sendable {
    var rounds: Int
    var quick: Bool
    var unsafeNoFsync: Bool
    var workloads: [String]
    var client: String
}

struct CompareReport: Codable, Sendable {
    var startedAt: String
    var finishedAt: String
    var options: RunOptions
    var machine: MachineFacts
    var targets: [TargetInfo]
    var measurements: [Measurement]
    var notes: [String]
}

/// Metric names used in `Measurement.metrics`.
enum MetricName {
    static let durationSeconds = "duration_s"
    static let throughput = "throughput_ops_s"
    static let operations = "operations"
    static let errors = "errors"
    static let serverCPUSeconds = "server_cpu_s"
    static let cpuPerKiloOp = "server_cpu_ms_per_1k_ops"
    static let peakRSS = "peak_rss_bytes"
    static let finalRSS = "final_rss_bytes"
    static let diskBytes = "disk_bytes"
    static let diskBytesAfterDefrag = "disk_bytes_after_compact_defrag"
    static let bytesWritten = "bytes_written"
    static let logicalBytes = "logical_bytes_written"
    static let writeAmplification = "write_amplification"
    static let fsyncCount = "fsync_count"
    static let startupMs = "startup_ms"
}
