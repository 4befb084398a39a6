import EngineAPI

/// An engine whose writes never wait for stable storage: `rusd --unsafe-no-fsync`.
///
/// etcd's `--unsafe-no-fsync` (3.5) skips the fsync of its WAL and of its backend commits;
/// here every `write` goes to the wrapped engine with `sync: false`, whatever the caller asked.
/// The wrapped engine's own contract for unsynced writes holds: the batch is applied
/// atomically and visible at once, and a crash of the machine (not of the process: written data
/// is in the kernel's page cache) may lose the latest batches. Work the engine does in the
/// background (LMDB checkpoints, LSM flushes and compactions) still syncs; it never delays an
/// acknowledged write. For benchmarks and tests only, as in etcd.
///
/// Thread-safety: as the wrapped engine.
public final class UnsyncedEngine: StorageEngine {
    public let base: any StorageEngine

    public init(_ base: any StorageEngine) {
        self.base = base
    }

    public var name: String { base.name }
    public var directory: String { base.directory }
    public func get(_ key: [UInt8]) throws -> [UInt8]? { try base.get(key) }
    public func readView() throws -> any ReadView { try base.readView() }
    public func write(_ batch: WriteBatch, sync: Bool) throws { try base.write(batch, sync: false) }
    public func reclaimSpace() throws { try base.reclaimSpace() }
    public func stats() throws -> EngineStats { try base.stats() }
    public func close() throws { try base.close() }
}
