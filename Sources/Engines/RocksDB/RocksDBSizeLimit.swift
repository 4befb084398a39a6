import EngineAPI

/// `EngineOptions.maxSizeBytes` for RocksDB, which has no such limit of its own: a write that
/// would take the store's files past it is refused with `.full` before anything of it is
/// applied. The bytes on disk are known from a directory scan, refreshed at least every
/// `rescanBytes` written (flushes and compactions change them in the background), and before
/// refusing a write (the estimate may be stale on the high side).
final class RocksDBSizeLimit: Sendable {
    static let rescanBytes: UInt64 = 4 << 20

    let directory: String
    let maxSizeBytes: UInt64?
    private struct State {
        var diskBytes: UInt64
        var bytesSinceScan: UInt64 = 0
    }
    private let state: EngineLocked<State>

    init(directory: String, maxSizeBytes: UInt64?, diskBytes: UInt64) {
        self.directory = directory
        self.maxSizeBytes = maxSizeBytes
        self.state = EngineLocked(State(diskBytes: diskBytes))
    }

    /// Throws `.full` when a batch of `bytes` would take the store past the limit.
    func check(adding bytes: UInt64) throws {
        guard let maxSizeBytes else { return }
        let (estimate, stale) = state.withLock {
            ($0.diskBytes &+ $0.bytesSinceScan, $0.bytesSinceScan >= Self.rescanBytes)
        }
        var disk = estimate
        if stale || estimate &+ bytes > maxSizeBytes {
            disk = RocksDBStoreFiles.diskBytes(try rescan(operation: "write"))
        }
        if disk &+ bytes > maxSizeBytes {
            throw EngineError(.full, engine: RocksDBEngine.engineName, path: directory, operation: "write",
                              message: "the store would exceed maxSizeBytes \(maxSizeBytes): \(disk) bytes on disk + \(bytes) bytes in this batch; nothing of the batch was applied")
        }
    }

    /// Counts a write's bytes towards the next rescan (the WAL grows by about as much).
    func recordWrite(_ bytes: UInt64) {
        state.withLock { $0.bytesSinceScan &+= bytes }
    }

    /// Lists the store's files and refreshes the disk estimate.
    @discardableResult
    func rescan(operation: String) throws -> [FileEntry] {
        let files: [FileEntry]
        do { files = try PosixFiles.listFiles(directory, recursive: false) } catch let e as PosixError {
            throw EngineError(.io, engine: RocksDBEngine.engineName, path: e.path, operation: operation, message: e.message)
        }
        let disk = RocksDBStoreFiles.diskBytes(files)
        state.withLock {
            $0.diskBytes = disk
            $0.bytesSinceScan = 0
        }
        return files
    }
}
