import Dispatch
import struct Foundation.Data
import EngineAPI
import EtcdProto
import EtcdServer
import GRPCTransport
import MVCC
import EtcdSnapshot
import Synchronization

/// etcd's `etcdserverpb.Maintenance` service for a single member that is its own leader.
///
/// - Status: version = `ReportedVersion.server`, dbSize / dbSizeInUse = the engine's disk and
///   live bytes, leader = this member, raftIndex = raftAppliedIndex = the applied log index,
///   errors = the active alarms.
/// - Hash / HashKV: `MVCCStore.hashAll` / `hashKV` (numbers differ from etcd's: different
///   storage layout; equal across rusd's engines for the same history).
/// - Snapshot: etcd's snapshot format (`EtcdSnapshotWriter`: a bbolt database in etcd 3.4's
///   layout + SHA-256) streamed in 32 KiB messages from a background thread that runs up to
///   4 MiB ahead of HTTP/2 (flow control: it waits while more is queued, so a slow client
///   never makes the server buffer more; the old 64 KiB watermark made producer and client
///   take turns).
/// - Defragment: `StorageEngine.reclaimSpace()` off the event loop.
/// - Alarm: GET on `EtcdServer.alarms`; ACTIVATE / DEACTIVATE through the ordered log.
/// - MoveLeader: to itself succeeds, to any other ID "etcdserver: bad leader transferee".
/// - Cluster mode (`member.cluster`): Status's leader is the member holding the leader
///   (lease-expiry) role, raftTerm its epoch (grows at every change of holder), raftIndex the
///   shared log's head (at least the applied index), raftAppliedIndex this member's applied
///   index; MoveLeader on a non-leader is "etcdserver: not leader", to a member that never
///   started "etcdserver: bad leader transferee", else the role moves to the target (answered
///   once it holds it, or etcd's "request timed out, leader transfer took too long").
/// - Downgrade: as etcd 3.5 validates it; enabling a downgrade is refused (rusd cannot write an
///   older storage format).
/// Auth, as the newest etcd's authMaintenanceServer (stricter than 3.4, which checks nothing on
/// Status and MoveLeader and answers its auth errors as gRPC UNKNOWN "auth: ..."): Status and
/// Alarm GET need an authenticated caller (requireAuthInfo: GHSA-q8m4-xhhv-38mg, relaxed from
/// root by etcd PRs 21538 and 21666 so kube-apiserver can poll Status as a non-root user);
/// Alarm ACTIVATE / DEACTIVATE and every other RPC the root role; errors are etcd's gRPC errors.
/// Scans (hashes, snapshot, defragment) run on background threads, never on the event loop.
public enum MaintenanceService {
    static let snapshotChunkSize = 32 * 1024
    /// How far the snapshot's producer may run ahead of HTTP/2 (see `SnapshotSender`).
    static let snapshotQueueBytes = 4 << 20

    public static func make(_ server: EtcdServer, member: LocalMember) -> Service {
        Service(name: "etcdserverpb.Maintenance", methods: [
            .unary("Status") { (_: Etcdserverpb_StatusRequest, context, responder: UnaryResponder<Etcdserverpb_StatusResponse>) in
                // Newest etcd: any authenticated caller (etcd 3.4 checks nothing).
                guard authorized(server, context, responder, tokenCheckedWhenDisabled: false, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAuthenticated() }) else { return }
                responder.complete(now: status(server, member))
            },
            .unary("Alarm") { (request: Etcdserverpb_AlarmRequest, context, responder: UnaryResponder<Etcdserverpb_AlarmResponse>) in
                // Newest etcd: GET needs an authenticated caller, a change the root role (etcd
                // 3.4: any valid token or none). An alarm request is a raft request, whose token
                // etcd 3.4 checks while auth is disabled too.
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in
                    if request.action == .get { try caller.requireAuthenticated() } else { try caller.requireAdmin() }
                }) else { return }
                alarm(request, server) { result in responder.complete(result, on: context) }
            },
            .unary("Hash") { (_: Etcdserverpb_HashRequest, context, responder: UnaryResponder<Etcdserverpb_HashResponse>) in
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAdmin() }) else { return }
                DispatchQueue.global().async {
                    let started = ContinuousClock.now
                    let result = Result { () throws(MVCCError) in try server.store.hashAll() }
                        .mapError { EtcdError($0) }
                        .map { h in
                            var resp = Etcdserverpb_HashResponse()
                            resp.header = server.header(revision: h.currentRevision)
                            resp.hash = h.hash
                            return resp
                        }
                    server.counters.observe(server.counters.hashSeconds, since: started)
                    responder.complete(result, on: context)
                }
            },
            .unary("HashKV") { (request: Etcdserverpb_HashKVRequest, context, responder: UnaryResponder<Etcdserverpb_HashKVResponse>) in
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAdmin() }) else { return }
                DispatchQueue.global().async {
                    let started = ContinuousClock.now
                    let result = Result { () throws(MVCCError) in try server.store.hashKV(revision: request.revision) }
                        .mapError { EtcdError($0) }
                        .map { h in
                            var resp = Etcdserverpb_HashKVResponse()
                            resp.header = server.header(revision: h.currentRevision)
                            resp.hash = h.hash
                            resp.compactRevision = h.compactRevision
                            return resp
                        }
                    server.counters.observe(server.counters.hashRevisionSeconds, since: started)
                    responder.complete(result, on: context)
                }
            },
            .unary("Defragment") { (_: Etcdserverpb_DefragmentRequest, context, responder: UnaryResponder<Etcdserverpb_DefragmentResponse>) in
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAdmin() }) else { return }
                DispatchQueue.global().async {
                    let result: Result<Etcdserverpb_DefragmentResponse, EtcdError>
                    let started = ContinuousClock.now
                    server.counters.defragStarted()
                    do {
                        try server.store.engine.reclaimSpace()
                        // etcd answers without a header.
                        result = .success(Etcdserverpb_DefragmentResponse())
                    } catch {
                        result = .failure(EtcdError(.unknown, "\(error)"))
                    }
                    server.counters.defragEnded()
                    server.counters.observe(server.counters.defragSeconds, since: started)
                    responder.complete(result, on: context)
                }
            },
            .serverStreaming("Snapshot") { (_: Etcdserverpb_SnapshotRequest, stream: ServerStream<Etcdserverpb_SnapshotResponse>) in
                do throws(EtcdError) {
                    try server.caller(stream.context).requireAdmin()
                } catch {
                    return stream.finish(GRPCStatus(error))
                }
                SnapshotSender(server: server, stream: stream).start()
            },
            .unary("MoveLeader") { (request: Etcdserverpb_MoveLeaderRequest, context, responder: UnaryResponder<Etcdserverpb_MoveLeaderResponse>) in
                // etcd 3.6 and newer: the root role (etcd 3.4 checks nothing).
                guard authorized(server, context, responder, tokenCheckedWhenDisabled: false, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAdmin() }) else { return }
                if let cluster = member.cluster {
                    return cluster.moveLeader(to: request.targetID) { error in
                        // etcd answers without a header
                        let result: Result<Etcdserverpb_MoveLeaderResponse, EtcdError> = if let error { .failure(error) } else { .success(Etcdserverpb_MoveLeaderResponse()) }
                        responder.complete(result, on: context)
                    }
                }
                guard request.targetID == server.config.memberID else {
                    return responder.fail(GRPCStatus(.failedPrecondition, "etcdserver: bad leader transferee"))
                }
                responder.succeed(Etcdserverpb_MoveLeaderResponse())  // etcd answers without a header
            },
            .unary("Downgrade") { (request: Etcdserverpb_DowngradeRequest, context, responder: UnaryResponder<Etcdserverpb_DowngradeResponse>) in
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAdmin() }) else { return }
                responder.complete(now: downgrade(request, server))
            },
        ])
    }

    static func status(_ server: EtcdServer, _ member: LocalMember) -> Result<Etcdserverpb_StatusResponse, EtcdError> {
        let stats: EngineStats
        do { stats = try server.store.engine.stats() } catch { return .failure(EtcdError(.unknown, "\(error)")) }
        var resp = Etcdserverpb_StatusResponse()
        resp.header = server.header(revision: server.currentRevision)
        resp.version = ReportedVersion.server
        resp.dbSize = Int64(clamping: stats.diskBytes)
        resp.dbSizeInUse = Int64(clamping: stats.liveBytes)
        resp.leader = server.config.memberID
        resp.raftIndex = server.appliedIndex
        resp.raftAppliedIndex = server.appliedIndex
        resp.raftTerm = server.config.raftTerm
        if let cluster = member.cluster {
            let l = cluster.leadership
            resp.leader = l.leaderID
            resp.raftTerm = l.term
            resp.raftIndex = max(l.committedIndex, server.appliedIndex)
        }
        resp.isLearner = false
        resp.errors = server.alarms.get().map(AlarmList.describe)
        return .success(resp)
    }

    /// etcd's alarm semantics: GET lists the alarms of the requested type (NONE: all), at once;
    /// ACTIVATE / DEACTIVATE go through the ordered log (persisted, applied by every member)
    /// and answer once durable with the alarm they changed, or none. etcd answers without a
    /// header.
    static func alarm(_ request: Etcdserverpb_AlarmRequest, _ server: EtcdServer,
                      _ done: @escaping @Sendable (Result<Etcdserverpb_AlarmResponse, EtcdError>) -> Void) {
        switch request.action {
        case .get:
            var resp = Etcdserverpb_AlarmResponse()
            resp.alarms = server.alarms.get(request.alarm)
            done(.success(resp))
        case .activate where request.alarm == .none, .UNRECOGNIZED:
            done(.success(Etcdserverpb_AlarmResponse()))
        case .activate, .deactivate:
            server.alarm(request, completion: done)
        }
    }

    /// etcd 3.5's Downgrade on a member whose cluster version is `ReportedVersion.cluster`:
    /// - VALIDATE / ENABLE: a target that is not semver (X.Y.Z, or X.Y) → "etcdserver: wrong
    ///   downgrade target version format"; a target other than one minor version below the
    ///   cluster's → "etcdserver: invalid downgrade target version"; VALIDATE answers the
    ///   cluster version ("3.6.0", as etcd's semver). ENABLE of a valid target is refused: rusd
    ///   cannot write an older storage format.
    /// - CANCEL: no downgrade is ever in flight → "etcdserver: no inflight downgrade job".
    /// - Any other action: UNKNOWN "etcdserver: unknown method".
    static func downgrade(_ request: Etcdserverpb_DowngradeRequest, _ server: EtcdServer) -> Result<Etcdserverpb_DowngradeResponse, EtcdError> {
        let cluster = majorMinor(ReportedVersion.cluster)!
        var resp = Etcdserverpb_DowngradeResponse()
        resp.header = server.header(revision: server.currentRevision)
        resp.version = "\(cluster.major).\(cluster.minor).0"
        switch request.action {
        case .cancel:
            return .failure(EtcdError(.failedPrecondition, "etcdserver: no inflight downgrade job"))
        case .validate, .enable:
            guard let target = majorMinor(request.version) ?? majorMinor(request.version + ".0") else {
                return .failure(EtcdError(.invalidArgument, "etcdserver: wrong downgrade target version format"))
            }
            guard target.major == cluster.major, target.minor == cluster.minor - 1 else {
                return .failure(EtcdError(.invalidArgument, "etcdserver: invalid downgrade target version"))
            }
            if request.action == .enable {
                return .failure(EtcdError(.failedPrecondition, "etcdserver: rusd cannot downgrade its storage to etcd \(request.version)"))
            }
            return .success(resp)
        case .UNRECOGNIZED:
            return .failure(EtcdError(.unknown, "etcdserver: unknown method"))
        }
    }

    /// Major and minor of a semantic version "X.Y.Z[-pre][+build]" (numeric X, Y, Z), nil when
    /// `version` is not one.
    static func majorMinor(_ version: String) -> (major: Int, minor: Int)? {
        let core = version.split(separator: "+", maxSplits: 1, omittingEmptySubsequences: false)[0]
            .split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let parts = core.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
              let major = Int(parts[0]), let minor = Int(parts[1]), Int(parts[2]) != nil else { return nil }
        return (major, minor)
    }
}

/// Streams one snapshot: a background thread produces the chunks and, once more than
/// `snapshotQueueBytes` wait for HTTP/2 (the client's flow-control window), waits until half
/// of them are sent: the connection stays busy while the next chunks are built, and a slow
/// client never makes the server buffer more than that. Stops when the client cancels.
final class SnapshotSender: Sendable {
    let server: EtcdServer
    let stream: ServerStream<Etcdserverpb_SnapshotResponse>
    private let wake = DispatchSemaphore(value: 0)

    init(server: EtcdServer, stream: ServerStream<Etcdserverpb_SnapshotResponse>) {
        self.server = server
        self.stream = stream
    }

    func start() {
        stream.setOnWritable { [wake] in wake.signal() }
        stream.setOnCancel { [wake] in wake.signal() }
        DispatchQueue.global().async { self.run() }
    }

    private func run() {
        let header = server.header(revision: server.currentRevision)
        let started = ContinuousClock.now
        defer { server.counters.observe(server.counters.snapshotSeconds, since: started) }
        var sent = 0
        do {
            try EtcdSnapshotWriter.write(engine: server.store.engine, chunkSize: MaintenanceService.snapshotChunkSize) { [stream, wake] chunk, total in
                if stream.isCancelled { return false }
                var resp = Etcdserverpb_SnapshotResponse()
                resp.header = header
                resp.blob = Data(chunk)
                sent += chunk.count
                resp.remainingBytes = UInt64(max(0, total - sent))
                stream.send(resp)
                let limit = MaintenanceService.snapshotQueueBytes
                if stream.pendingBytes > limit {
                    // Resume once half is sent, so the connection never runs dry while the next
                    // chunks are built (`wake` also fires when the queue is nearly empty).
                    while stream.pendingBytes > limit / 2 && !stream.isCancelled {
                        _ = wake.wait(timeout: .now() + .milliseconds(1))
                    }
                }
                return !stream.isCancelled
            }
            stream.finish()
        } catch is EtcdSnapshotWriter.Stopped {
            stream.finish()
        } catch {
            stream.finish(GRPCStatus(EtcdError(.internalError, "etcdserver: snapshot failed: \(error)")))
        }
    }
}
