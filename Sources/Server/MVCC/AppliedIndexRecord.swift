import EngineAPI

/// The store's applied-index record seen from outside the MVCC layer: for an engine wrapper
/// that must know which log index a batch makes durable (cluster mode without local fsync,
/// docs/cluster.md "Local fsync"). The record is written in the same atomic batch as the
/// effects of the entries it counts (`StoreWriter.commit`), so the engine state after any
/// crash is exactly "entries 1...recorded index applied".
public enum AppliedIndexRecord {
    /// The applied index `batch` records, or nil when it writes no (well-formed) such record.
    public static func index(in batch: WriteBatch) -> UInt64? {
        // The last write of the key wins; `StoreWriter.commit` puts it at the end of the batch.
        let key = MetaKey.appliedIndex.engineKey
        for op in batch.operations.reversed() where op.key == key {
            guard case .put(_, let value) = op else { return nil }
            return try? MetaKey.decode(value, name: MetaKey.appliedIndex.rawValue)
        }
        return nil
    }

    /// Reads the engine's applied-index record and writes it back unchanged with `sync: true`,
    /// so that everything the engine holds now (including writes a killed process left in the
    /// page cache) is on stable storage. Returns the index, or nil for a store without one
    /// (new: the bootstrap batch will write it). Call before anything else writes.
    public static func syncCurrent(_ engine: any StorageEngine) throws -> UInt64? {
        let key = MetaKey.appliedIndex.engineKey
        guard let value = try engine.get(key) else { return nil }
        let index = try MetaKey.decode(value, name: MetaKey.appliedIndex.rawValue)
        var batch = WriteBatch()
        batch.put(key, value)
        try engine.write(batch, sync: true)
        return index
    }
}
