import MVCC

/// gRPC status codes (the subset etcd uses), by their wire numbers.
public enum GRPCStatusCode: Int, Sendable {
    case ok = 0, canceled = 1, unknown = 2, invalidArgument = 3, deadlineExceeded = 4, notFound = 5
    case alreadyExists = 6, permissionDenied = 7, resourceExhausted = 8, failedPrecondition = 9
    case aborted = 10, outOfRange = 11, unimplemented = 12, internalError = 13, unavailable = 14
    case dataLoss = 15, unauthenticated = 16
}

/// An error as etcd reports it to clients: a gRPC status code and etcd's exact message
/// (from etcd's api/v3rpc/rpctypes). The transport sends `code.rawValue` as grpc-status and
/// `message` as grpc-message.
public struct EtcdError: Error, Sendable, Hashable, CustomStringConvertible {
    public var code: GRPCStatusCode
    public var message: String

    public init(_ code: GRPCStatusCode, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code) (\(code.rawValue)): \(message)" }

    // KV
    public static let emptyKey = EtcdError(.invalidArgument, "etcdserver: key is not provided")
    public static let keyNotFound = EtcdError(.invalidArgument, "etcdserver: key not found")
    public static let valueProvided = EtcdError(.invalidArgument, "etcdserver: value is provided")
    public static let leaseProvided = EtcdError(.invalidArgument, "etcdserver: lease is provided")
    public static let invalidSortOption = EtcdError(.invalidArgument, "etcdserver: invalid sort option")
    public static let tooManyOps = EtcdError(.invalidArgument, "etcdserver: too many operations in txn request")
    public static let duplicateKey = EtcdError(.invalidArgument, "etcdserver: duplicate key given in txn request")
    public static let compacted = EtcdError(.outOfRange, "etcdserver: mvcc: required revision has been compacted")
    public static let futureRevision = EtcdError(.outOfRange, "etcdserver: mvcc: required revision is a future revision")
    public static let noSpace = EtcdError(.resourceExhausted, "etcdserver: mvcc: database space exceeded")
    public static let requestTooLarge = EtcdError(.invalidArgument, "etcdserver: request is too large")
    public static let tooManyRequests = EtcdError(.resourceExhausted, "etcdserver: too many requests")
    // Lease
    public static let leaseNotFound = EtcdError(.notFound, "etcdserver: requested lease not found")
    public static let leaseExists = EtcdError(.failedPrecondition, "etcdserver: lease already exists")
    public static let leaseTTLTooLarge = EtcdError(.outOfRange, "etcdserver: too large lease TTL")
    // Server
    public static let stopped = EtcdError(.unavailable, "etcdserver: server stopped")
    public static let timeout = EtcdError(.unavailable, "etcdserver: request timed out")
    public static let corrupt = EtcdError(.dataLoss, "etcdserver: corrupt cluster")

    /// Maps a store error as etcd's togRPCError does (unknown errors: code UNKNOWN, message as is).
    public init(_ e: MVCCError) {
        switch e {
        case .compacted: self = .compacted
        case .futureRevision: self = .futureRevision
        case .closed: self = .stopped
        case .corruption, .engine: self = EtcdError(.unknown, e.description)
        }
    }
}
