/// The in-memory index: user key → `KeyHistory`, ordered by key (bytewise).
///
/// A value type with copy-on-write storage in two levels of small sorted arrays: branches of
/// leaves of entries (at most `branchMax` leaves per branch, `leafMax` entries per leaf). A copy
/// is O(1), and the writer's first change after a copy duplicates only the path it touches: the
/// array of branches, one branch and one leaf. This is how readers get a lock-free snapshot:
/// the store publishes a copy after each commit and readers keep using it while the writer
/// moves on. (Copying an element costs retains, so the arrays stay small: with one flat level
/// of 512-entry chunks, a commit of random keys spent about a third of the server's CPU
/// retaining and releasing copied entries.)
///
/// Sizes (perf, lsm, 64-client random-key puts over 10k keys): an entry holds one reference
/// (`KeyHistory`), and the retains/releases of copied leaves are cache misses on cold storage
/// objects, so smaller leaves cost less per put: 32-entry leaves took the index from 13% to
/// 7% of the server's samples (64-entry leaves: 9%). Smaller branches or leaves grow the
/// branches array, which every commit copies once: at 1M keys and one put per commit, 16-entry
/// leaves cost 4x the old index per put, 32 about 1.7x (22 µs, next to a millisecond fsync).
/// A third level would lift that limit.
struct KeyIndex: Sendable {
    static let leafMax = 32
    static let branchMax = 64

    /// Every branch and every leaf is non-empty; keys ascend across the whole structure.
    private(set) var branches: [[[KeyHistory]]] = []
    /// Number of keys held (live or with history only).
    private(set) var count = 0

    init() {}

    /// Builds an index from entries already sorted by key with no duplicates.
    init(sorted entries: [KeyHistory]) {
        var leaves: [[KeyHistory]] = []
        leaves.reserveCapacity(entries.count / (KeyIndex.leafMax / 2) + 1)
        var i = 0
        while i < entries.count {
            let j = min(i + KeyIndex.leafMax / 2, entries.count)
            leaves.append(Array(entries[i..<j]))
            i = j
        }
        branches = KeyIndex.group(leaves)
        count = entries.count
    }

    /// Groups leaves into half-full branches.
    private static func group(_ leaves: [[KeyHistory]]) -> [[[KeyHistory]]] {
        var out: [[[KeyHistory]]] = []
        out.reserveCapacity(leaves.count / (branchMax / 2) + 1)
        var i = 0
        while i < leaves.count {
            let j = min(i + branchMax / 2, leaves.count)
            out.append(Array(leaves[i..<j]))
            i = j
        }
        return out
    }

    struct Position: Equatable {
        var branch: Int
        var leaf: Int
        var slot: Int
    }

    /// The position of `key`, or where it would be inserted.
    func position(of key: [UInt8]) -> (Position, found: Bool) {
        position(of: SearchKey(key))
    }

    func position(of key: SearchKey) -> (Position, found: Bool) {
        if branches.isEmpty { return (Position(branch: 0, leaf: 0, slot: 0), false) }
        // First branch whose last key >= key.
        var lo = 0, hi = branches.count
        while lo < hi {
            let mid = (lo + hi) / 2
            let last = branches[mid][branches[mid].count - 1]
            if last[last.count - 1].compare(key) < 0 { lo = mid + 1 } else { hi = mid }
        }
        if lo == branches.count {
            let b = branches.count - 1, l = branches[b].count - 1
            return (Position(branch: b, leaf: l, slot: branches[b][l].count), false)
        }
        let branch = branches[lo]
        // First leaf of that branch whose last key >= key (exists: the branch's last does).
        var a = 0, z = branch.count
        while a < z {
            let mid = (a + z) / 2
            if branch[mid][branch[mid].count - 1].compare(key) < 0 { a = mid + 1 } else { z = mid }
        }
        let leaf = branch[a]
        var s = 0, e = leaf.count
        while s < e {
            let mid = (s + e) / 2
            if leaf[mid].compare(key) < 0 { s = mid + 1 } else { e = mid }
        }
        let found = s < leaf.count && leaf[s].compare(key) == 0
        return (Position(branch: lo, leaf: a, slot: s), found)
    }

    func get(_ key: [UInt8]) -> KeyHistory? {
        let (p, found) = position(of: key)
        return found ? branches[p.branch][p.leaf][p.slot] : nil
    }

    /// Changes the entry of `key` in place, inserting `make()` first when it is absent.
    mutating func upsert(_ key: [UInt8], make: () -> KeyHistory, _ change: (inout KeyHistory) -> Void) {
        let (p, found) = position(of: key)
        if found {
            change(&branches[p.branch][p.leaf][p.slot])
            return
        }
        var entry = make()
        change(&entry)
        count += 1
        if branches.isEmpty {
            branches = [[[entry]]]
            return
        }
        branches[p.branch][p.leaf].insert(entry, at: p.slot)
        guard branches[p.branch][p.leaf].count > KeyIndex.leafMax else { return }
        let tail = Array(branches[p.branch][p.leaf][(KeyIndex.leafMax / 2)...])
        branches[p.branch][p.leaf].removeLast(tail.count)
        branches[p.branch].insert(tail, at: p.leaf + 1)
        guard branches[p.branch].count > KeyIndex.branchMax else { return }
        let tailLeaves = Array(branches[p.branch][(KeyIndex.branchMax / 2)...])
        branches[p.branch].removeLast(tailLeaves.count)
        branches.insert(tailLeaves, at: p.branch + 1)
    }

    /// Inserts a new entry (the key must be absent).
    mutating func insert(_ entry: KeyHistory) {
        upsert(entry.key, make: { entry }, { _ in })
    }

    /// Visits entries with start <= key < end (end nil: no upper bound) in key order, until
    /// `visit` returns false.
    func forEach(from start: [UInt8], to end: [UInt8]?, _ visit: (KeyHistory) throws -> Bool) rethrows {
        var (p, _) = position(of: start)
        let endKey = end.map(SearchKey.init)
        while p.branch < branches.count {
            let branch = branches[p.branch]
            while p.leaf < branch.count {
                // Entries visited in place (borrowed: no retain of each entry's storage).
                let stop = try branch[p.leaf].withUnsafeBufferPointer { leaf throws -> Bool in
                    while p.slot < leaf.count {
                        if let endKey, leaf[p.slot].compare(endKey) >= 0 { return true }
                        if try !visit(leaf[p.slot]) { return true }
                        p.slot += 1
                    }
                    return false
                }
                if stop { return }
                p.leaf += 1
                p.slot = 0
            }
            p.branch += 1
            p.leaf = 0
        }
    }

    /// Applies `KeyHistory.compact(at:)` to every key, removing keys left empty. Leaves nothing
    /// changed are kept as they are (shared with older snapshots).
    mutating func compact(at rev: Int64, dropped: inout [Revision]) {
        var leaves: [[KeyHistory]] = []
        var newCount = 0
        var current: [KeyHistory] = []
        for branch in branches {
            for leaf in branch {
                var changed = false
                var kept: [KeyHistory] = []
                kept.reserveCapacity(leaf.count)
                for var e in leaf {
                    if e.needsCompaction(at: rev) {
                        changed = true
                        if e.compact(at: rev, dropped: &dropped) { kept.append(e) }
                    } else {
                        kept.append(e)
                    }
                }
                newCount += kept.count
                if !changed && current.isEmpty {
                    leaves.append(leaf)
                    continue
                }
                current.append(contentsOf: kept)
                if current.count >= KeyIndex.leafMax / 2 {
                    leaves.append(current)
                    current = []
                }
            }
        }
        if !current.isEmpty { leaves.append(current) }
        branches = KeyIndex.group(leaves)
        count = newCount
    }
}
