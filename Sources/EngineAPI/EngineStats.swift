/// What an engine reports about itself. Counters are since `open`.
public struct EngineStats: Sendable, Hashable {
    /// Bytes of live keys and values (an estimate where exact accounting is expensive).
    public var liveBytes: UInt64
    /// Bytes of the engine's files on disk (allocated size of the data files).
    public var diskBytes: UInt64
    /// Bytes the engine wrote to its files since open (WAL, tables, pages, manifests):
    /// divided by the user bytes written, the write amplification.
    public var bytesWrittenSinceOpen: UInt64
    /// Number of live entries, where cheap to know.
    public var entryCount: UInt64?
    /// Engine-specific numbers ("flushes", "compactions", "level0.files", "stall.seconds", ...).
    public var details: [String: Double]

    public init(liveBytes: UInt64, diskBytes: UInt64, bytesWrittenSinceOpen: UInt64,
                entryCount: UInt64? = nil, details: [String: Double] = [:]) {
        self.liveBytes = liveBytes
        self.diskBytes = diskBytes
        self.bytesWrittenSinceOpen = bytesWrittenSinceOpen
        self.entryCount = entryCount
        self.details = details
    }
}
