import Auth
import EtcdServer
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import GRPCTransport
import Synchronization
import WatchHub

/// Who may see what on one Watch stream: the auth side of `WatchService`.
///
/// Contract:
/// - A create is checked when it arrives, as etcd 3.4 does (`isWatchPermitted`): the stream's
///   caller (token, else TLS client certificate name) needs READ on the whole watched range.
///   A refused create is answered as etcd answers it: `created` and `canceled`, watch ID -1,
///   cancel reason the gRPC error as Go prints it ("rpc error: code = PermissionDenied desc =
///   etcdserver: permission denied", `cancelReason`).
/// - An open watch is checked again, against the current auth state, before it is sent
///   anything after the auth state changed (a role revoked, a user deleted, auth enabled). A
///   watcher no longer allowed to read its whole range gets no more events: it is cancelled
///   with the reason a create would get now. Stricter than etcd (3.4 to 3.6 check a watch only
///   when it is created, and keep sending events to it whatever changes later); see
///   docs/compatibility.md. The user re-checked is the one resolved at create time, so a
///   simple token expiring while its watch runs cancels nothing (as in etcd).
///
/// The hub answers creates in the order they are submitted, so the `created` responses the
/// sink sees pair one to one, in order, with the creates submitted here.
///
/// Thread-safety: all methods may be called from any thread (in practice the stream's event
/// loop).
final class WatchStreamAccess: Sendable {
    /// A create handed to the hub, waiting for its `created` response.
    private enum Pending {
        case admitted(Grant)
        case refused
    }

    /// What a watcher was allowed to watch, and as whom.
    private struct Grant {
        var user: String?
        var key: Data
        var rangeEnd: Data
    }

    private struct State {
        var pending: [Pending] = []
        var pendingHead = 0
        var grants: [Int64: Grant] = [:]
        /// Watchers cancelled here, whose cancel the hub has not answered yet: their responses
        /// are dropped, the hub's plain `canceled` included.
        var revoked: Set<Int64> = []
        /// The auth revision the grants were last checked at.
        var checkedRevision: UInt64
        var session: WatchSession?
    }

    private let server: EtcdServer
    private let context: CallContext
    private let state: Mutex<State>
    /// Copies of `State.checkedRevision` and of whether `State.revoked` is empty, written
    /// inside `state`'s lock by `admits` (on the sink's executor) and read by its fast path
    /// there: an event response while the auth state did not change since the last check and
    /// nothing is revoked (always so with auth off) passes without taking the lock.
    private let checkedRevision: Atomic<UInt64>
    private let anyRevoked = Atomic<Bool>(false)

    init(server: EtcdServer, context: CallContext) {
        self.server = server
        self.context = context
        let revision = server.auth.revision
        state = Mutex(State(checkedRevision: revision))
        checkedRevision = Atomic(revision)
    }

    func attach(_ session: WatchSession) {
        state.withLock { $0.session = session }
    }

    /// Checks a create request and hands it to the hub (admitted or refused).
    func create(_ options: WatchCreateOptions, on session: WatchSession) {
        let key = Data(options.key), rangeEnd = Data(options.rangeEnd)
        do throws(EtcdError) {
            let caller = try server.caller(context)
            try caller.checkWatch(key: key, rangeEnd: rangeEnd)
            // With auth disabled the caller is anonymous unless it sent a valid JWT; a client
            // certificate still names the user that a later re-check (auth enabled meanwhile)
            // judges.
            let grant = Grant(user: caller.user ?? context.peerCommonName, key: key, rangeEnd: rangeEnd)
            state.withLock { s in s.pending.append(.admitted(grant)) }
            session.create(options)
        } catch {
            state.withLock { s in s.pending.append(.refused) }
            session.refuseCreate(reason: Self.cancelReason(error))
        }
    }

    /// etcd's cancel reason for an auth failure: the text of the gRPC error, as Go prints it
    /// ("rpc error: code = PermissionDenied desc = etcdserver: permission denied"); any error
    /// but an invalid token or a missing user name is "permission denied" (etcd's recvLoop).
    static func cancelReason(_ error: EtcdError) -> String {
        let (code, e): (String, AuthError) = switch error.message {
        case AuthError.invalidAuthToken.message: ("Unauthenticated", .invalidAuthToken)
        case AuthError.userEmpty.message: ("InvalidArgument", .userEmpty)
        default: ("PermissionDenied", .permissionDenied)
        }
        return "rpc error: code = \(code) desc = \(e.message)"
    }

    /// Whether `response` may go to the client; call for every response, in order, on the
    /// sink's executor. May send a cancel of its own first (through `stream`).
    func admits(_ r: WatchResponse, cancelVia stream: ServerStream<EncodedWatchResponse>) -> Bool {
        let revision = server.auth.revision
        if !r.created && !r.canceled && revision == checkedRevision.load(ordering: .relaxed)
            && !anyRevoked.load(ordering: .relaxed) {
            return true
        }
        var revokedNow: [(Int64, String)] = []
        let (admitted, session) = state.withLock { s -> (Bool, WatchSession?) in
            if r.created {
                guard s.pendingHead < s.pending.count else { return (true, s.session) }
                let p = s.pending[s.pendingHead]
                s.pendingHead += 1
                if s.pendingHead == s.pending.count {
                    s.pending.removeAll(keepingCapacity: true)
                    s.pendingHead = 0
                }
                if case .admitted(let g) = p, r.watchID != -1, !r.canceled { s.grants[r.watchID] = g }
                return (true, s.session)
            }
            if r.canceled {
                s.grants[r.watchID] = nil
                let wasRevoked = s.revoked.remove(r.watchID) != nil
                anyRevoked.store(!s.revoked.isEmpty, ordering: .relaxed)
                return (!wasRevoked, s.session)
            }
            if s.revoked.contains(r.watchID) { return (false, s.session) }
            if revision != s.checkedRevision {
                s.checkedRevision = revision
                checkedRevision.store(revision, ordering: .relaxed)
                defer { anyRevoked.store(!s.revoked.isEmpty, ordering: .relaxed) }
                for (id, g) in s.grants {
                    do throws(EtcdError) {
                        try server.caller(user: g.user).checkWatch(key: g.key, rangeEnd: g.rangeEnd)
                    } catch {
                        revokedNow.append((id, Self.cancelReason(error)))
                        s.grants[id] = nil
                        s.revoked.insert(id)
                    }
                }
            }
            return (!s.revoked.contains(r.watchID), s.session)
        }
        for (id, reason) in revokedNow.sorted(by: { $0.0 < $1.0 }) {
            var cancel = EncodedWatchResponse()
            cancel.header = server.header(revision: server.currentRevision)
            cancel.watchID = id
            cancel.canceled = true
            cancel.cancelReason = reason
            stream.send(cancel)
            session?.cancel(id)
        }
        return admitted
    }
}
