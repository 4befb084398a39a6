import Dispatch
import EngineAPI
import MVCC
import Synchronization

/// Leases: which exist, their TTLs and deadlines, and the keys attached to each.
///
/// Grants and revocations are log entries (applied by the state machine, persisted in the same
/// engine batch as the rest of their group); keep-alives only move a deadline in memory, as on
/// etcd's leader. Deadlines are not persisted: after a restart every lease gets its full TTL
/// again (etcd's behaviour after a leader change). Expired leases are revoked by submitting
/// revoke entries to the log (see `EtcdServer`), never by changing the store directly.
///
/// Persisted record: key `l` + lease ID (8 bytes big-endian) → granted TTL (8 bytes LE).
public final class Lessor: Sendable {
    /// etcd's MaxLeaseTTL (9,000,000,000 seconds).
    public static let maxTTL: Int64 = 9_000_000_000

    struct Lease {
        var ttl: Int64
        var deadline: DispatchTime
        var keys: Set<[UInt8]> = []
        var revoking = false
    }

    /// Minimum TTL granted (etcd: 1.5 × election timeout rounded up; 2 s with the defaults).
    public let minTTL: Int64
    private let table = Mutex<[Int64: Lease]>([:])

    init(minTTL: Int64) {
        self.minTTL = minTTL
    }

    /// `ttl` seconds after `start`, the TTL taken within 0 ... `maxTTL` (a record read back
    /// from disk is not trusted to be), so the nanosecond arithmetic stays far from overflow.
    static func deadline(_ start: DispatchTime, _ ttl: Int64) -> DispatchTime {
        start + .seconds(Int(min(max(ttl, 0), maxTTL)))
    }

    static func recordKey(_ id: Int64) -> [UInt8] {
        var k: [UInt8] = [StorageLayout.leasePrefix]
        withUnsafeBytes(of: UInt64(bitPattern: id).bigEndian) { k.append(contentsOf: $0) }
        return k
    }

    /// Rebuilds the table from the committed store: lease records and the leases of live keys.
    func reload(from store: MVCCStore) throws(EtcdError) {
        var leases: [Int64: Lease] = [:]
        let now = DispatchTime.now()
        do {
            let view = try store.engine.readView()
            try view.scan(KeyRange.prefix([StorageLayout.leasePrefix]), reverse: false, limit: nil) { k, v in
                guard k.count == 9, v.count == 8 else {
                    throw EtcdError(.dataLoss, "etcdserver: corrupt lease record (key \(k.count) bytes, value \(v.count) bytes) in \(store.engine.directory)")
                }
                let id = Int64(bitPattern: UInt64(bigEndian: k.loadUnaligned(fromByteOffset: 1, as: UInt64.self)))
                let ttl = Int64(bitPattern: UInt64(littleEndian: v.loadUnaligned(as: UInt64.self)))
                leases[id] = Lease(ttl: ttl, deadline: Lessor.deadline(now, ttl))
                return true
            }
        } catch let e as EtcdError {
            throw e
        } catch {
            throw EtcdError(.unknown, "\(error)")
        }
        store.read().forEachLeasedKey { key, id in leases[id]?.keys.insert(key) }
        table.withLock { $0 = leases }
    }

    // MARK: used by the applier

    func exists(_ id: Int64) -> Bool { table.withLock { $0[id] != nil } }

    func attach(_ key: [UInt8], to id: Int64) {
        guard id != 0 else { return }
        table.withLock { _ = $0[id]?.keys.insert(key) }
    }

    func detach(_ key: [UInt8], from id: Int64) {
        guard id != 0 else { return }
        table.withLock { _ = $0[id]?.keys.remove(key) }
    }

    /// Applies a grant: records the lease (TTL raised to `minTTL`) and stages its record.
    func grant(_ id: Int64, ttl requested: Int64, writer: StoreWriter) throws(EtcdError) -> Int64 {
        let ttl = max(requested, minTTL)
        try table.withLock { (t) throws(EtcdError) in
            if t[id] != nil { throw .leaseExists }
            t[id] = Lease(ttl: ttl, deadline: Lessor.deadline(.now(), ttl))
        }
        var v: [UInt8] = []
        withUnsafeBytes(of: UInt64(bitPattern: ttl).littleEndian) { v.append(contentsOf: $0) }
        writer.stageAuxiliaryPut(Lessor.recordKey(id), v)
        return ttl
    }

    /// Applies a revocation: removes the lease and stages the removal of its record; returns
    /// the attached keys (sorted) for the caller to delete in the same store transaction.
    func revoke(_ id: Int64, writer: StoreWriter) throws(EtcdError) -> [[UInt8]] {
        guard let lease = table.withLock({ $0.removeValue(forKey: id) }) else { throw .leaseNotFound }
        writer.stageAuxiliaryDelete(Lessor.recordKey(id))
        return lease.keys.sorted { $0.lexicographicallyPrecedes($1) }
    }

    // MARK: used by any thread

    /// Renews a lease: its deadline becomes now + TTL. Returns the TTL, or nil when the lease
    /// does not exist or already expired (its revocation is pending).
    func renew(_ id: Int64) -> Int64? {
        table.withLock { t in
            guard var l = t[id], !l.revoking, l.deadline > .now() else { return nil }
            l.deadline = Lessor.deadline(.now(), l.ttl)
            t[id] = l
            return l.ttl
        }
    }

    /// (remaining seconds, granted TTL, keys) of a lease, nil when it does not exist.
    func timeToLive(_ id: Int64) -> (remaining: Int64, granted: Int64, keys: [[UInt8]])? {
        table.withLock { t in
            guard let l = t[id] else { return nil }
            let now = DispatchTime.now().uptimeNanoseconds
            let end = l.deadline.uptimeNanoseconds
            let remaining = end > now ? Int64((end - now) / 1_000_000_000) : 0
            return (remaining, l.ttl, l.keys.sorted { $0.lexicographicallyPrecedes($1) })
        }
    }

    /// The keys attached to a lease (unordered), nil when it does not exist.
    func keys(of id: Int64) -> Set<[UInt8]>? {
        table.withLock { $0[id]?.keys }
    }

    var ids: [Int64] { table.withLock { Array($0.keys).sorted() } }

    /// Leases past their deadline not yet being revoked; marks them as being revoked.
    func takeExpired(limit: Int) -> [Int64] {
        let now = DispatchTime.now()
        return table.withLock { t in
            var out: [Int64] = []
            for (id, l) in t where !l.revoking && l.deadline <= now {
                out.append(id)
                if out.count >= limit { break }
            }
            for id in out { t[id]?.revoking = true }
            return out
        }
    }

    /// Every lease's deadline becomes now + its TTL (a member taking over lease expiry in a
    /// cluster: etcd's leader promotion extends remaining TTLs rather than expiring early).
    func refreshAllDeadlines() {
        let now = DispatchTime.now()
        table.withLock { t in
            for (id, lease) in t { t[id]?.deadline = Lessor.deadline(now, lease.ttl) }
        }
    }

    // MARK: cluster mode (keep-alives seen by other members, docs/cluster.md)

    /// A renewal made elsewhere: the lease lives at least `remainingMilliseconds` from now
    /// (taken within 0 ... its TTL, since the figure comes from the shared log). Moves the
    /// deadline only forward, except that it also clears a pending expiry: an expired lease
    /// that another member renewed in time is kept. Returns whether the lease is alive after.
    @discardableResult
    func extend(_ id: Int64, remainingMilliseconds: Int64) -> Bool {
        let now = DispatchTime.now()
        return table.withLock { t in
            guard var l = t[id] else { return false }
            let ms = min(max(remainingMilliseconds, 0), min(max(l.ttl, 0), Lessor.maxTTL) * 1000)
            let candidate = now + .milliseconds(Int(ms))
            guard candidate > now else { return false }
            if candidate > l.deadline || l.revoking {
                l.deadline = max(l.deadline, candidate)
                l.revoking = false
                t[id] = l
            }
            return true
        }
    }

    /// Every lease not being revoked with the milliseconds left until its deadline (at least 0).
    func remainingMilliseconds() -> [(id: Int64, milliseconds: Int64)] {
        let now = DispatchTime.now().uptimeNanoseconds
        return table.withLock { t in
            t.compactMap { (id, l) -> (id: Int64, milliseconds: Int64)? in
                if l.revoking { return nil }
                let end = l.deadline.uptimeNanoseconds
                return (id, end > now ? Int64((end - now) / 1_000_000) : 0)
            }
        }
    }

    /// Whether there is no lease at all.
    var isEmpty: Bool { table.withLock { $0.isEmpty } }

    /// Clears the revoking mark (the revocation failed; retry at the next check).
    func revocationFailed(_ id: Int64) {
        table.withLock { $0[id]?.revoking = false }
    }
}
