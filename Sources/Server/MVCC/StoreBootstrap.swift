import EngineAPI

/// The first write of a new store, as a new etcd member's first raft entry (the configuration
/// change that adds the member, index 1): records the layout version, the member under the
/// cluster namespace (`StorageLayout.clusterPrefix`), and applied index 1, so client writes
/// start at log index 2 as they do in etcd, and an empty store is not an empty engine (etcd's
/// new bbolt file likewise holds its buckets and meta).
public enum StoreBootstrap {
    /// Writes the bootstrap records (synced) when `engine` holds no store yet; returns whether
    /// it did. A store that already has a layout version, an applied index or any revision
    /// record is left alone.
    @discardableResult
    public static func bootstrapIfNew(_ engine: any StorageEngine, memberID: UInt64, memberRecord: [UInt8]) throws -> Bool {
        let view = try engine.readView()
        if try view.get(MetaKey.layoutVersion.engineKey) != nil || view.get(MetaKey.appliedIndex.engineKey) != nil {
            return false
        }
        if try !view.entries(StorageLayout.revisionRange, limit: 1).isEmpty { return false }
        var batch = WriteBatch()
        batch.put(MetaKey.layoutVersion.engineKey, MetaKey.encode(StoreLoader.layoutVersion))
        batch.put(MetaKey.appliedIndex.engineKey, MetaKey.encode(1))
        var key = [StorageLayout.clusterPrefix] + Array("member/".utf8)
        key.appendBigEndian(memberID)
        batch.put(key, memberRecord)
        try engine.write(batch, sync: true)
        return true
    }
}
