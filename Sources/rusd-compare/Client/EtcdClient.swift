/// The persistent-client surface the workloads drive. One instance is one connection (HTTP/2
/// channel). Implementations must allow concurrent calls from many tasks (requests are
/// multiplexed as HTTP/2 streams, as etcd's Go client does); `watch` streams run alongside.
///
/// Errors: any thrown error counts as a failed request; implementations should carry etcd's
/// message (e.g. "etcdserver: mvcc: required revision has been compacted").
protocol EtcdClient: Sendable {
    /// Put; returns the revision of the write (`header.revision`).
    func put(key: [UInt8], value: [UInt8], lease: Int64) async throws -> Int64
    /// Range [key, rangeEnd) (single key when rangeEnd is empty) at `revision` (0 = latest).
    func range(key: [UInt8], rangeEnd: [UInt8], limit: Int64, revision: Int64,
               keysOnly: Bool, countOnly: Bool) async throws -> RangeResult
    /// Txn If(compares) Then(success) Else(failure).
    func txn(compares: [TxnCompare], success: [TxnOp], failure: [TxnOp]) async throws -> TxnResult
    /// DeleteRange; returns the number of keys deleted.
    func delete(key: [UInt8], rangeEnd: [UInt8]) async throws -> Int64
    /// Watch [key, rangeEnd) from `startRevision` (0 = now), with prev_kv when asked. The stream
    /// yields each WatchResponse's events; it ends when the handle is cancelled.
    func watch(key: [UInt8], rangeEnd: [UInt8], startRevision: Int64, prevKV: Bool) async throws -> WatchHandle
    /// LeaseGrant with `ttl` seconds; returns the lease ID.
    func leaseGrant(ttl: Int64) async throws -> Int64
    /// Compact up to `revision` (physical: wait until applied to the backend).
    func compact(revision: Int64, physical: Bool) async throws
    /// Maintenance.Status.
    func status() async throws -> ServerStatus
    /// Maintenance.Defragment.
    func defragment() async throws
    /// Closes the connection; the client is unusable afterwards.
    func close() async
    /// Runs a closed-loop load on this connection and returns its latencies (failed requests
    /// counted as errors). Throws only when the run cannot complete (see `ClosedLoopLoad.grace`).
    func runClosedLoop(_ load: ClosedLoopLoad) async throws -> LatencyHistogram
}

/// Makes connected clients for one endpoint.
protocol EtcdClientFactory: Sendable {
    /// Short name shown in reports, e.g. "GRPCTransport".
    var name: String { get }
    func connect(endpoint: String) async throws -> any EtcdClient
}

struct KeyValue: Sendable {
    var key: [UInt8]
    var value: [UInt8]
    var createRevision: Int64
    var modRevision: Int64
    var version: Int64
    var lease: Int64
}

struct RangeResult: Sendable {
    var kvs: [KeyValue]
    var count: Int64
    var more: Bool
    var revision: Int64
}

enum TxnCompare: Sendable {
    case modRevision(key: [UInt8], equals: Int64)
    case version(key: [UInt8], equals: Int64)
}

enum TxnOp: Sendable {
    case put(key: [UInt8], value: [UInt8], lease: Int64)
    case range(key: [UInt8], rangeEnd: [UInt8], limit: Int64)
    case delete(key: [UInt8], rangeEnd: [UInt8])
}

struct TxnResult: Sendable {
    var succeeded: Bool
    var revision: Int64
    /// kvs of the first range op in the branch taken (what kube-apiserver reads on conflict).
    var rangeKVs: [KeyValue]
}

struct ServerStatus: Sendable {
    var version: String
    var dbSize: Int64
    var revision: Int64
}

struct WatchEvent: Sendable {
    enum Kind: Sendable { case put, delete }
    var kind: Kind
    var kv: KeyValue
    var prevKV: KeyValue?
}

/// A running watch: its events and a way to cancel it.
struct WatchHandle: Sendable {
    var events: AsyncThrowingStream<[WatchEvent], Error>
    var cancel: @Sendable () async -> Void
}

extension EtcdClient {
    func put(_ key: String, _ value: [UInt8], lease: Int64 = 0) async throws -> Int64 {
        try await put(key: Array(key.utf8), value: value, lease: lease)
    }
    /// The store's current revision, from a count-only Range's header (needs only KV.Range).
    func currentRevision() async throws -> Int64 {
        try await range(key: [0], rangeEnd: [0], limit: 1, revision: 0, keysOnly: false, countOnly: true).revision
    }
    func get(_ key: String) async throws -> RangeResult {
        try await range(key: Array(key.utf8), rangeEnd: [], limit: 1, revision: 0, keysOnly: false, countOnly: false)
    }
}

/// The range end that covers every key with `prefix` (etcd's "prefix end").
func prefixEnd(_ prefix: [UInt8]) -> [UInt8] {
    var end = prefix
    while let last = end.last {
        if last < 0xff { end[end.count - 1] = last + 1; return end }
        end.removeLast()
    }
    return [0]
}
