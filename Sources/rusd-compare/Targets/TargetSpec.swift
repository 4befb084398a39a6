/// How a compared server is obtained: started by us (rusd with one engine, or etcd) or already
/// running somewhere (external endpoint: no process stats, no fresh data dir).
struct TargetSpec: Sendable {
    enum Launch: Sendable {
        case rusd(binary: String, engine: String)
        case etcd(binary: String, passUnsafeNoFsync: Bool)
        case external(url: String)
    }
    var info: TargetInfo
    var launch: Launch
    var unsafeNoFsync: Bool

    var name: String { info.name }
    var isExternal: Bool { if case .external = launch { return true } else { return false } }
}
