/// How a compared server is obtained: started by us (rusd with one engine, or etcd), a
/// three-member cluster started by us (`ClusterLauncher`), or already running somewhere
/// (external endpoint: no process stats, no fresh data dir).
struct TargetSpec: Sendable {
    enum Launch: Sendable {
        case rusd(binary: String, engine: String)
        case etcd(binary: String, passUnsafeNoFsync: Bool)
        case external(url: String)
        /// Three rusd members on `engines` sharing a log in PostgreSQL: a scratch one this tool
        /// starts (`postgresURL` nil) or an existing database whose rusd_* tables are dropped
        /// before each run. `localFsync` nil: the members' default `--cluster-local-fsync`.
        case rusdCluster(binary: String, engines: [String], postgresURL: String?, localFsync: Bool?)
        /// Three etcd members on loopback (real Raft, fsync on).
        case etcdCluster(binary: String)
    }
    var info: TargetInfo
    var launch: Launch
    var unsafeNoFsync: Bool

    var name: String { info.name }
    var isExternal: Bool { if case .external = launch { return true } else { return false } }
    var isCluster: Bool {
        switch launch {
        case .rusdCluster, .etcdCluster: return true
        default: return false
        }
    }
}
