/// The lease bookkeeping the KV path needs: which leases exist and which keys each lease holds.
/// Confined to the applier thread (like `StoreWriter`).
public final class LeaseAttachments: @unchecked Sendable {
    private var keysByLease: [Int64: Set<[UInt8]>] = [:]

    init() {}

    func exists(_ id: Int64) -> Bool { keysByLease[id] != nil }

    func create(_ id: Int64) {
        if keysByLease[id] == nil { keysByLease[id] = [] }
    }

    func remove(_ id: Int64) -> Set<[UInt8]> {
        keysByLease.removeValue(forKey: id) ?? []
    }

    func keys(of id: Int64) -> Set<[UInt8]> { keysByLease[id] ?? [] }

    var ids: [Int64] { Array(keysByLease.keys) }

    func attach(_ key: [UInt8], to id: Int64) {
        guard id != 0 else { return }
        keysByLease[id, default: []].insert(key)
    }

    func detach(_ key: [UInt8], from id: Int64) {
        guard id != 0 else { return }
        keysByLease[id]?.remove(key)
    }
}
