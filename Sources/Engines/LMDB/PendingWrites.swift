import EngineAPI
import HashTreeCollections

/// Writes that are in the write-ahead log but not yet committed to LMDB: for each key, its
/// latest value, or nil for a deletion.
///
/// A value type with structural sharing (a hash trie): a copy is O(1) and a later change copies
/// only the nodes it touches, so a read view keeps the state it captured while the writer
/// moves on.
struct PendingWrites: Sendable {
    private(set) var entries = TreeDictionary<[UInt8], [UInt8]?>()
    /// Key and value bytes applied (overwritten ones included): what a flush will roughly write.
    private(set) var byteCount = 0

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    mutating func apply(_ batch: WriteBatch) {
        for op in batch.operations {
            switch op {
            case .put(let key, let value): entries[key] = .some(value)
            case .delete(let key): entries[key] = .some(nil)
            }
        }
        byteCount += batch.byteCount
    }

    /// Applies `newer`'s writes over these.
    mutating func absorb(_ newer: PendingWrites) {
        for (key, value) in newer.entries { entries[key] = .some(value) }
        byteCount += newer.byteCount
    }

    /// nil when the key has no pending write (read LMDB); `.some(nil)` when it was deleted.
    func lookup(_ key: [UInt8]) -> [UInt8]?? {
        entries[key]
    }

    /// The operations as one batch in ascending key order (LMDB inserts sorted keys fastest).
    func sortedBatch() -> WriteBatch {
        var batch = WriteBatch()
        for (key, value) in entries.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            if let value { batch.put(key, value) } else { batch.delete(key) }
        }
        return batch
    }
}

/// The pending writes a reader sees: the active set (newest), then the sealed set that is being
/// committed to LMDB, then LMDB itself.
struct PendingLayers: Sendable {
    var active = PendingWrites()
    var sealed: PendingWrites? = nil

    var isEmpty: Bool { active.isEmpty && (sealed?.isEmpty ?? true) }

    /// nil when the key has no pending write; `.some(nil)` when its latest write deleted it.
    func lookup(_ key: [UInt8]) -> [UInt8]?? {
        if let hit = active.lookup(key) { return hit }
        if let sealed { return sealed.lookup(key) }
        return nil
    }

    /// Moves the active writes onto the sealed set (after a failed commit, both are committed
    /// together), leaving the active set empty.
    mutating func seal() {
        guard var merged = sealed else {
            sealed = active
            active = PendingWrites()
            return
        }
        merged.absorb(active)
        sealed = merged
        active = PendingWrites()
    }

    /// The pending entries inside `range` (deletions as nil values), in ascending key order,
    /// or descending with `reverse`.
    func entries(in range: KeyRange, reverse: Bool) -> [(key: [UInt8], value: [UInt8]?)] {
        var merged: [[UInt8]: [UInt8]?] = [:]
        if let sealed {
            for (key, value) in sealed.entries where range.contains(key) { merged[key] = .some(value) }
        }
        for (key, value) in active.entries where range.contains(key) { merged[key] = .some(value) }
        let sorted = merged.map { (key: $0.key, value: $0.value) }
            .sorted { $0.key.lexicographicallyPrecedes($1.key) }
        return reverse ? sorted.reversed() : sorted
    }
}

/// Visits the union of `pending` (ordered in the scan's direction) and what `scanStore` visits
/// (LMDB, same order and range), pending entries shadowing stored ones with the same key and
/// pending deletions hiding them; at most `limit` entries. `visit` returns false to stop.
func mergedScan(pending: [(key: [UInt8], value: [UInt8]?)], reverse: Bool, limit: Int?,
                scanStore: ((UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws -> Void,
                _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
    if let limit, limit <= 0 { return }
    try withoutActuallyEscaping(visit) { visit in
        try mergedScan(pending: pending, reverse: reverse, limit: limit, scanStore: scanStore, escapingVisit: visit)
    }
}

private func mergedScan(pending: [(key: [UInt8], value: [UInt8]?)], reverse: Bool, limit: Int?,
                        scanStore: ((UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws -> Void,
                        escapingVisit visit: @escaping (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
    var next = 0
    var visited = 0
    var stopped = false
    /// Emits one entry; false once the scan must end.
    func emit(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool {
        guard try visit(key, value) else { return false }
        visited += 1
        if let limit, visited >= limit { return false }
        return true
    }
    func emitPending(_ i: Int) throws -> Bool {
        guard let value = pending[i].value else { return true }
        return try pending[i].key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try emit(k, v) } }
    }
    try scanStore { key, value in
        // Pending entries that come before this stored key.
        while next < pending.count {
            let order = compareBytes(key, pending[next].key)
            if reverse ? order < 0 : order > 0 {
                guard try emitPending(next) else { stopped = true; return false }
                next += 1
            } else if order == 0 {
                let shadowing = next
                next += 1
                guard try emitPending(shadowing) else { stopped = true; return false }
                return true
            } else {
                break
            }
        }
        guard try emit(key, value) else { stopped = true; return false }
        return true
    }
    if stopped { return }
    while next < pending.count {
        guard try emitPending(next) else { return }
        next += 1
    }
}
