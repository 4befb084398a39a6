import ClusterLog
import EtcdServer
import Logging

/// --shared-log (cluster mode, docs/cluster.md): the shared log is reached, created or checked
/// before the member serves; the cluster ID comes from it and the member ID from the name.
struct SharedLogSetup {
    let url: SharedLogURL
    let info: SharedLogInfo
    let memberID: UInt64

    /// nil without --shared-log. Exits (code 1) with a message naming the URL when the log
    /// cannot be used (bad URL, unreachable, wrong credentials, incompatible schema).
    static func open(_ config: ServerConfig, logger: Logger) -> SharedLogSetup? {
        if config.sharedLog.isEmpty { return nil }
        do throws(SharedLogError) {
            let url = try SharedLogURL(config.sharedLog)
            let info = try SharedLogStart.open(url, logger: logger)
            let memberID = MemberIdentity(peerURLs: [config.name], clusterToken: String(info.clusterID)).memberID
            logger.info("joined the shared log", metadata: [
                "shared-log": "\(url)", "head": "\(info.head)", "cluster-id": "\(String(info.clusterID, radix: 16))"])
            return SharedLogSetup(url: url, info: info, memberID: memberID)
        } catch {
            fail("\(error)")
        }
    }

    /// The factory `EtcdServer` calls with its applier: refuses a data dir that applied more
    /// than the log holds (another cluster's, or a single member's), else starts the log.
    func makeLog(name: String, clientURLs: [String], logger: Logger) -> (LogApplier) throws(EtcdError) -> any ReplicatedLog {
        let url = url, head = info.head, memberID = memberID
        return { (applier: LogApplier) throws(EtcdError) -> any ReplicatedLog in
            if applier.appliedIndex > head {
                throw EtcdError(.failedPrecondition, SharedLogError.aheadOfLog(applied: applier.appliedIndex, head: head).description)
            }
            return PostgresLog(url: url, name: name, memberID: memberID, clientURLs: clientURLs,
                               applier: applier, logger: logger)
        }
    }
}
