import Auth
import EngineAPI
import MVCC
import Synchronization

/// The server's auth state: the committed `AuthState` (persisted as one record through the
/// ordered log), the in-memory simple tokens, and the password hasher.
///
/// Thread-safety: reads (`state`, checks) from any thread; `apply` only from the applier.
public final class AuthStore: Sendable {
    /// Engine key of the persisted state (server namespace `a`).
    static let recordKey: [UInt8] = [StorageLayout.authPrefix] + Array("state".utf8)

    private let committed = Mutex(AuthState())
    /// `committed.revision`, readable without the lock (checked per Watch response sent).
    private let committedRevision = Atomic<UInt64>(0)
    public let tokens: SimpleTokens
    public let hasher: PasswordHasher

    init(tokenTTLSeconds: Int, bcryptCost: Int) {
        tokens = SimpleTokens(ttlSeconds: tokenTTLSeconds)
        hasher = PasswordHasher(cost: bcryptCost)
    }

    /// The current auth state.
    public var state: AuthState { committed.withLock { $0 } }

    /// The current auth state's revision (bumped by every change, enable and disable too).
    public var revision: UInt64 { committedRevision.load(ordering: .acquiring) }

    private func commit(_ s: AuthState) {
        committed.withLock { $0 = s }
        committedRevision.store(s.revision, ordering: .releasing)
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
}

extension EtcdError {
    /// etcd's gRPC error for an auth failure.
    public init(_ e: AuthError) {
        self.init(GRPCStatusCode(rawValue: e.grpcCode) ?? .unknown, e.message)
    }
}
