import Auth
import EngineAPI
import MVCC
import Synchronization

/// The server's auth state: the committed `AuthState` (persisted as one record through the
/// ordered log), the token provider (simple tokens or JWTs, --auth-token), and the password hasher.
///
/// Thread-safety: reads (`state`, checks) from any thread; `apply` only from the applier.
public final class AuthStore: Sendable {
    /// Engine key of the persisted state (server namespace `a`).
    static let recordKey: [UInt8] = [StorageLayout.authPrefix] + Array("state".utf8)

    private let committed = Mutex(AuthState())
    /// Counts committed changes, readable without the lock (checked per Watch response sent).
    private let changes = Atomic<UInt64>(0)
    /// The committed state's auth revision while auth is enabled, 0 while it is disabled
    /// (revisions start at 1): what the applier compares an entry's identity with.
    let enabledRevision = Atomic<UInt64>(0)
    public let tokens: any AuthTokenProvider
    public let hasher: PasswordHasher

    init(tokens: any AuthTokenProvider, bcryptCost: Int) {
        self.tokens = tokens
        hasher = PasswordHasher(cost: bcryptCost)
    }

    /// The current auth state.
    public var state: AuthState { committed.withLock { $0 } }

    /// Changes with every change of the auth state, enable and disable too: how open watches
    /// notice one. Not etcd's auth revision (that is `state.revision`, which enabling keeps).
    public var revision: UInt64 { changes.load(ordering: .acquiring) }

    private func commit(_ s: AuthState) {
        committed.withLock { $0 = s }
        enabledRevision.store(s.enabled ? s.revision : 0, ordering: .releasing)
        changes.wrappingAdd(1, ordering: .releasing)
    }

    /// Loads the persisted state (none: auth disabled, no users, no roles).
    func reload(from store: MVCCStore) throws(EtcdError) {
        let bytes: [UInt8]?
        do { bytes = try store.engine.get(Self.recordKey) } catch { throw EtcdError(.unknown, "\(error)") }
        guard let bytes else {
            commit(AuthState())
            return
        }
        guard let decoded = AuthState(decoding: bytes) else {
            throw EtcdError(.dataLoss, "etcdserver: corrupt auth record in \(store.engine.directory)")
        }
        commit(decoded)
    }

    /// Applies a mutation (applier only): stages the new record in the current group.
    func apply(_ mutation: AuthState.Mutation, writer: StoreWriter) throws(EtcdError) {
        let current = state
        let next: AuthState
        do { next = try current.applying(mutation) } catch { throw EtcdError(error) }
        guard next != current else { return }
        writer.stageAuxiliaryPut(Self.recordKey, next.encoded())
        commit(next)
        switch mutation {
        case .disable: tokens.revokeAll()
        case .userDelete(let name), .userChangePassword(let name, _): tokens.revokeAll(of: name)
        default: break
        }
    }

    /// Applies a simple-token grant at log `index` (applier only): registers its token when
    /// the password was checked against the current auth state, and returns it; nil when the
    /// state changed since (the proposer checks again). Stores nothing: tokens live in memory,
    /// as in etcd. A member whose `--auth-token` is not simple registers nothing.
    func register(_ grant: SimpleTokenGrant, index: UInt64) throws(EtcdError) -> String? {
        let s = state
        guard s.enabled else { throw EtcdError(AuthError.authNotEnabled) }
        guard s.revision == grant.checkedRevision else { return nil }
        guard let user = s.users[grant.user], !user.noPassword else { throw EtcdError(AuthError.authFailed) }
        let token = grant.token(index: index)
        (tokens as? SimpleTokens)?.register(token, user: user.name)
        return token
    }
}

extension EtcdError {
    /// etcd's gRPC error for an auth failure.
    public init(_ e: AuthError) {
        self.init(GRPCStatusCode(rawValue: e.grpcCode) ?? .unknown, e.message)
    }
}
