/// The in-memory index: user key → `KeyHistory`, ordered by key (bytewise).
///
/// A value type with copy-on-write storage in chunks of sorted entries (an array of arrays, at
/// most `maxChunk` entries each): a copy is O(1), and the writer's first change after a copy
/// duplicates only the outer array and the chunks it touches. This is how readers get a
/// lock-free snapshot: the store publishes a copy after each commit and readers keep using it
/// while the writer moves on.
struct KeyIndex: Sendable {
    static let maxChunk = 512

    private(set) var chunks: [[KeyHistory]] = []
    /// Number of keys held (live or with history only).
    private(set) var count = 0

    init() {}

    /// Builds an index from entries already sorted by key with no duplicates.
    init(sorted entries: [KeyHistory]) {
        let half = KeyIndex.maxChunk / 2
        var i = 0
        while i < entries.count {
            let j = min(i + half, entries.count)
            chunks.append(Array(entries[i..<j]))
            i = j
        }
        count = entries.count
    }

    struct Position: Equatable {
        var chunk: Int
        var slot: Int
    }

    /// The position of `key`, or where it would be inserted.
    func position(of key: [UInt8]) -> (Position, found: Bool) {
        if chunks.isEmpty { return (Position(chunk: 0, slot: 0), false) }
        // First chunk whose last key >= key.
        var lo = 0, hi = chunks.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if compareBytes(chunks[mid][chunks[mid].count - 1].key, key) < 0 { lo = mid + 1 } else { hi = mid }
        }
        if lo == chunks.count {
            return (Position(chunk: chunks.count - 1, slot: chunks[chunks.count - 1].count), false)
        }
        let chunk = chunks[lo]
        var a = 0, b = chunk.count
        while a < b {
            let mid = (a + b) / 2
            if compareBytes(chunk[mid].key, key) < 0 { a = mid + 1 } else { b = mid }
        }
        let found = a < chunk.count && compareBytes(chunk[a].key, key) == 0
        return (Position(chunk: lo, slot: a), found)
    }

    func get(_ key: [UInt8]) -> KeyHistory? {
        let (p, found) = position(of: key)
        return found ? chunks[p.chunk][p.slot] : nil
    }

    /// Changes the entry of `key` in place, inserting `make()` first when it is absent.
    mutating func upsert(_ key: [UInt8], make: () -> KeyHistory, _ change: (inout KeyHistory) -> Void) {
        let (p, found) = position(of: key)
        if found {
            change(&chunks[p.chunk][p.slot])
            return
        }
        var entry = make()
        change(&entry)
        if chunks.isEmpty {
            chunks.append([entry])
        } else {
            chunks[p.chunk].insert(entry, at: p.slot)
            if chunks[p.chunk].count > KeyIndex.maxChunk {
                let tail = Array(chunks[p.chunk][(KeyIndex.maxChunk / 2)...])
                chunks[p.chunk].removeLast(tail.count)
                chunks.insert(tail, at: p.chunk + 1)
            }
        }
        count += 1
    }

    /// Inserts a new entry (the key must be absent).
    mutating func insert(_ entry: KeyHistory) {
        upsert(entry.key, make: { entry }, { _ in })
    }

    /// Visits entries with start <= key < end (end nil: no upper bound) in key order, until
    /// `visit` returns false.
    func forEach(from start: [UInt8], to end: [UInt8]?, _ visit: (KeyHistory) throws -> Bool) rethrows {
        var (p, _) = position(of: start)
        while p.chunk < chunks.count {
            let chunk = chunks[p.chunk]
            while p.slot < chunk.count {
                let e = chunk[p.slot]
                if let end, compareBytes(e.key, end) >= 0 { return }
                if try !visit(e) { return }
                p.slot += 1
            }
            p.chunk += 1
            p.slot = 0
        }
    }

    /// Applies `KeyHistory.compact(at:)` to every key, removing keys left empty.
    mutating func compact(at rev: Int64, dropped: inout [Revision]) {
        var newChunks: [[KeyHistory]] = []
        newChunks.reserveCapacity(chunks.count)
        var newCount = 0
        var current: [KeyHistory] = []
        for chunk in chunks {
            var changed = false
            var kept: [KeyHistory] = []
            kept.reserveCapacity(chunk.count)
            for var e in chunk {
                let needs = e.latest.revision.main <= rev ? (!e.older.isEmpty || e.latest.isTombstone)
                                                          : (!e.older.isEmpty && e.older[0].revision.main <= rev)
                if needs {
                    changed = true
                    if e.compact(at: rev, dropped: &dropped) { kept.append(e) }
                } else {
                    kept.append(e)
                }
            }
            newCount += kept.count
            if !changed && current.isEmpty {
                newChunks.append(chunk)
                continue
            }
            current.append(contentsOf: kept)
            if current.count >= KeyIndex.maxChunk / 4 {
                newChunks.append(current)
                current = []
            }
        }
        if !current.isEmpty { newChunks.append(current) }
        chunks = newChunks
        count = newCount
    }
}
