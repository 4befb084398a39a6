import EngineAPI
import Logging
import MVCC

/// --cluster-local-fsync (docs/cluster.md "Local fsync"): whether a cluster member writes its
/// local engine with an fsync per group commit, or (the default, lmdb and lsm) about once a
/// second (`LogCheckpointedEngine`).
enum ClusterLocalFsync {
    /// Engines whose recovery after a machine crash keeps a prefix of the batches written (a
    /// log switch syncs the old log first): lmdb and lsm. LevelDB closes a full log without
    /// syncing it, so a crash could keep later batches and lose earlier ones: it keeps fsync.
    static let engines: Set<String> = ["lmdb", "lsm"]

    /// How often the local store is synced without local fsync.
    static let intervalMilliseconds = 1_000

    /// `opened` wrapped in a `LogCheckpointedEngine` in cluster mode without
    /// `--cluster-local-fsync` (the default) on an engine of `engines`; nil otherwise (other
    /// engines are synced at every group commit).
    static func engine(_ opened: any StorageEngine, config: ServerConfig, logger: Logger) throws -> (any StorageEngine)? {
        guard !config.sharedLog.isEmpty, !config.clusterLocalFsync else { return nil }
        guard engines.contains(config.engine) else {
            logger.info("the local store is synced at every group commit (without local fsync: lmdb and lsm only)",
                        metadata: ["engine": "\(config.engine)", "supported": "\(engines.sorted().joined(separator: ", "))"])
            return nil
        }
        logger.info("cluster mode without local fsync: the local store is synced about once a second; the shared log holds every entry durably")
        return try LogCheckpointedEngine(opened, intervalMilliseconds: intervalMilliseconds)
    }
}
