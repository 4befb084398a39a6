/// The data of one `rusd-compare engines` run, written as JSON next to the Markdown.
struct EngineBenchReport: Codable, Sendable {
    var date: String
    var machine: MachineFacts
    var parameters: EngineBenchParameters
    /// One result per engine, in the order the engines were run.
    var engines: [EngineBenchResult]
    var notes: [String]
}

struct EngineBenchParameters: Codable, Sendable {
    var keys: Int
    var syncPuts: Int
    var batchSize: Int
    var valueBytes: Int
    var keyBytes: Int
    var gets: Int
    var scans: Int
    var reverseScans: Int
    var scanLength: Int
    var cacheBytes: Int
    var writeBufferBytes: Int
    var quick: Bool
}

/// Throughput of one phase: `operations` done in `seconds`.
struct PhaseResult: Codable, Sendable {
    var operations: Int
    var seconds: Double
    var opsPerSecond: Double { seconds > 0 ? Double(operations) / seconds : 0 }

    enum CodingKeys: String, CodingKey { case operations, seconds, opsPerSecond }

    init(operations: Int, seconds: Double) {
        self.operations = operations
        self.seconds = seconds
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        operations = try c.decode(Int.self, forKey: .operations)
        seconds = try c.decode(Double.self, forKey: .seconds)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(operations, forKey: .operations)
        try c.encode(seconds, forKey: .seconds)
        try c.encode(opsPerSecond, forKey: .opsPerSecond)
    }
}

struct EngineBenchResult: Codable, Sendable {
    var engine: String
    /// `keys` puts in batches of `batchSize`, each batch synced.
    var load: PhaseResult?
    /// `syncPuts` puts, one per synced batch.
    var syncPuts: PhaseResult?
    var gets: PhaseResult?
    var scans: PhaseResult?
    var reverseScans: PhaseResult?
    /// Deleting the oldest half (synced batches of `batchSize`) then `reclaimSpace()`; operations = 1.
    var deleteAndReclaim: PhaseResult?
    /// Key+value bytes the load and synced-put phases stored.
    var logicalBytesWritten: UInt64 = 0
    /// The engine's own count (`EngineStats.bytesWrittenSinceOpen`) after the put phases.
    var engineBytesWritten: UInt64 = 0
    /// /proc/self/io write_bytes summed over this engine's put phases (includes any background
    /// writes of other engines that ran meanwhile; engines run one at a time).
    var procBytesWritten: UInt64 = 0
    /// Allocated bytes of the engine's directory after the put phases and after delete+reclaim.
    var diskBytesAfterLoad: Int64 = 0
    var diskBytesAfterReclaim: Int64 = 0
    /// Lookups that did not return the expected value, entries of scans that did not match.
    var errors: [String] = []

    init(engine: String) { self.engine = engine }

    var writeAmplification: Double {
        logicalBytesWritten > 0 ? Double(engineBytesWritten) / Double(logicalBytesWritten) : 0
    }
    var procWriteAmplification: Double {
        logicalBytesWritten > 0 ? Double(procBytesWritten) / Double(logicalBytesWritten) : 0
    }
}
