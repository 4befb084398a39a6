/// Failures of the MVCC store. The server maps them to etcd's gRPC errors.
public enum MVCCError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The requested revision is older than the compaction revision ("mvcc: required revision has
    /// been compacted").
    case compacted
    /// The requested revision is newer than the current revision ("mvcc: required revision is a
    /// future revision").
    case futureRevision
    /// A stored record failed a structural check; never served as data.
    case corruption(String)
    /// The engine failed (message from `EngineError`).
    case engine(String)
    /// The store was closed.
    case closed

    public var description: String {
        switch self {
        case .compacted: return "mvcc: required revision has been compacted"
        case .futureRevision: return "mvcc: required revision is a future revision"
        case .corruption(let m): return "mvcc: corrupt store: \(m)"
        case .engine(let m): return "mvcc: engine error: \(m)"
        case .closed: return "mvcc: store closed"
        }
    }
}
