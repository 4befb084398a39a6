#if canImport(Glibc)
import Glibc
#endif
import ClusterLog
import EngineAPI
import EtcdServer
import Logging

/// --shared-log (cluster mode, docs/cluster.md): the shared log is reached, created or checked
/// before the member serves; the cluster ID comes from it, the member ID from the membership
/// recorded there (derived from the name and the cluster ID for a new member).
struct SharedLogSetup {
    let url: SharedLogURL
    let info: SharedLogInfo
    let membership: PostgresMembership
    var memberID: UInt64 { membership.memberID }
    /// What the Cluster and Maintenance services ask about membership and the leader.
    var clusterMembership: any ClusterMembership { membership }

    /// nil without --shared-log. Exits (code 1) with a message naming the URL when the log
    /// cannot be used (bad URL, unreachable, wrong credentials, incompatible schema), when a
    /// live member already serves under this --name, or when this member was removed.
    /// A member removed while serving shuts down as on SIGTERM.
    static func open(_ config: ServerConfig, logger: Logger) -> SharedLogSetup? {
        if config.sharedLog.isEmpty { return nil }
        let url: SharedLogURL, info: SharedLogInfo
        do throws(SharedLogError) {
            url = try SharedLogURL(config.sharedLog)
            info = try SharedLogStart.open(url, logger: logger)
        } catch {
            fail("\(error)")
        }
        let membership: PostgresMembership
        do throws(MembershipError) {
            let derivedID = MemberIdentity(peerURLs: [config.name], clusterToken: String(info.clusterID)).memberID
            membership = try PostgresMembership.join(url: url, name: config.name, derivedID: derivedID,
                                                     peerURLs: config.advertisePeerURLs.map(\.description),
                                                     clientURLs: config.advertiseClientURLs.map(\.description),
                                                     logger: logger, onRemoved: { kill(getpid(), SIGTERM) })
        } catch {
            fail("\(error)")
        }
        logger.info("joined the shared log", metadata: [
            "shared-log": "\(url)", "head": "\(info.head)", "cluster-id": "\(String(info.clusterID, radix: 16))",
            "member-id": "\(String(membership.memberID, radix: 16))"])
        return SharedLogSetup(url: url, info: info, membership: membership)
    }

    /// The factory `EtcdServer` calls with its applier: refuses a data dir that applied more
    /// than the log holds (another cluster's, or a single member's), else starts the log, and
    /// the snapshots and trimming the member does while it is the leader (of the store in
    /// `engine`, as `--snapshot-count` and `--experimental-snapshot-catchup-entries` say). A log
    /// trimmed past this member's applied index makes it re-bootstrap.
    func makeLog(name: String, clientURLs: [String], engine: any StorageEngine, config: ServerConfig,
                 rebootstrap: Rebootstrap, logger: Logger) -> (LogApplier) throws(EtcdError) -> any ReplicatedLog {
        let url = url, head = info.head, memberID = memberID, membership = membership
        let store = StoreSnapshotSource(engine: engine)
        let policy = SnapshotPolicy(snapshotCount: config.snapshotCount, catchUpEntries: config.snapshotCatchUpEntries)
        return { (applier: LogApplier) throws(EtcdError) -> any ReplicatedLog in
            if applier.appliedIndex > head {
                throw EtcdError(.failedPrecondition, SharedLogError.aheadOfLog(applied: applier.appliedIndex, head: head).description)
            }
            let log = PostgresLog(url: url, name: name, memberID: memberID, clientURLs: clientURLs,
                                  applier: applier, logger: logger, membership: membership,
                                  trimmedPast: { _, _ in rebootstrap.request() })
            _ = LogTrimmer(log: log, store: store, policy: policy, logger: logger)   // runs until the log stops
            return log
        }
    }
}
