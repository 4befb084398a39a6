/// The key-values of the latest puts, in a ring of slots indexed by main revision (a newer
/// put replaces the one `capacity` revisions older; of several puts in one revision, the last
/// is kept), bounded in bytes (over the bound, the oldest slots are emptied first). The writer answers reads of a key's previous version from it —
/// the watch hub's prev_kv on every put while an observer is installed, prevKv on put/delete —
/// without an engine read and a record decode when that version is recent. (Under 64-client
/// random-key puts those reads were 5% of the server's CPU in a perf profile.)
///
/// Defaults: 32k slots (about 2.3 MB once the first put arrives) and 8 MiB of key-values:
/// with 256-byte values over 10k random keys, about 9 of 10 previous versions are found here.
///
/// Values are shared with the events, not copied. Writer-confined, like `StoreWriter`; must be
/// emptied when the writer rolls back (revisions are then reused for other puts).
struct RecentPuts {
    let capacity: Int
    let maxBytes: Int
    private struct Slot {
        var revision: Revision
        var kv: KeyValue
    }
    /// Allocated on the first put (an idle server holds nothing).
    private var slots: [Slot?] = []
    private(set) var bytes = 0
    /// Where eviction for the byte bound resumes: just past the newest slot it emptied, which
    /// trails the (contiguous) run of recent revisions, so it finds the oldest held put fast.
    private var evictFrom = 0

    init(capacity: Int = 32_768, maxBytes: Int = 8 << 20) {
        self.capacity = max(1, capacity)
        self.maxBytes = maxBytes
    }

    static func size(of kv: KeyValue) -> Int { kv.key.count + kv.value.count + 64 }

    @inline(__always) private func slot(_ rev: Revision) -> Int {
        Int(UInt64(bitPattern: rev.main) % UInt64(capacity))
    }

    /// Remembers the put of `rev` in its slot (dropping what the slot held); not kept when it
    /// would take the total over `maxBytes`.
    mutating func add(_ rev: Revision, _ kv: KeyValue) {
        if slots.isEmpty { slots = Array(repeating: nil, count: capacity) }
        let i = slot(rev)
        if let old = slots[i] {
            bytes -= RecentPuts.size(of: old.kv)
            slots[i] = nil
        }
        if evictFrom == i { evictFrom = (i + 1) % capacity }
        let size = RecentPuts.size(of: kv)
        guard size <= maxBytes else { return }
        while bytes + size > maxBytes {
            if let old = slots[evictFrom] {
                bytes -= RecentPuts.size(of: old.kv)
                slots[evictFrom] = nil
            }
            evictFrom = (evictFrom + 1) % capacity
        }
        slots[i] = Slot(revision: rev, kv: kv)
        bytes += size
    }

    /// Number of puts held (for tests).
    var count: Int { slots.reduce(0) { $0 + ($1 == nil ? 0 : 1) } }

    /// The key-value of the put of `rev`, if still held.
    func get(_ rev: Revision) -> KeyValue? {
        guard !slots.isEmpty, let s = slots[slot(rev)], s.revision == rev else { return nil }
        return s.kv
    }

    mutating func removeAll() {
        slots = []
        bytes = 0
        evictFrom = 0
    }
}
