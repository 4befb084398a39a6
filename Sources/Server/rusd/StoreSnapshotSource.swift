import ClusterLog
import EngineAPI
import EtcdSnapshot
import MVCC

/// The member's store as the shared log's snapshot source (`LocalStoreSnapshots`): etcd's
/// snapshot format (`EtcdSnapshotWriter`, streamed), from one engine read view whose applied
/// index and revision are what the snapshot covers.
struct StoreSnapshotSource: LocalStoreSnapshots {
    let engine: any StorageEngine

    func writeSnapshot(chunkBytes: Int, begin: @escaping (UInt64, Int64, Int) throws -> Void,
                       emit: @escaping ([UInt8]) throws -> Void) throws {
        let view = try engine.readView()
        let meta = try SnapshotFormat.meta(in: view)
        var failure: (any Error)?
        var begun = false
        do {
            try EtcdSnapshotWriter.write(engine: PinnedViewEngine(engine, view: view), chunkSize: chunkBytes) { chunk, total in
                do {
                    if !begun {
                        try begin(meta.appliedIndex, meta.currentRevision, total)
                        begun = true
                    }
                    try emit(chunk)
                    return true
                } catch {
                    failure = error
                    return false
                }
            }
        } catch let stopped as EtcdSnapshotWriter.Stopped {
            throw failure ?? stopped
        }
    }
}

/// `engine` whose `readView()` answers `view`, always: hands the writer the very view whose
/// metadata the caller read. Everything else goes to `engine`.
private final class PinnedViewEngine: StorageEngine {
    let base: any StorageEngine
    let view: any ReadView

    init(_ base: any StorageEngine, view: any ReadView) {
        self.base = base
        self.view = view
    }

    var name: String { base.name }
    var directory: String { base.directory }
    func get(_ key: [UInt8]) throws -> [UInt8]? { try view.get(key) }
    func readView() throws -> any ReadView { view }
    func write(_ batch: WriteBatch, sync: Bool) throws { try base.write(batch, sync: sync) }
    func reclaimSpace() throws { try base.reclaimSpace() }
    func stats() throws -> EngineStats { try base.stats() }
    func close() throws {}
}
