import EngineAPI

/// A consistent view: the memtables, the version (set of tables) and the last published
/// sequence number at the time of `readView()`. Pins them until it is released.
final class LSMReadView: ReadView, @unchecked Sendable {
    private let engine: LSMEngine
    private let snap: LSMEngine.Snapshot
    /// Scratch for table lookups, reused by every get (a view is used by one thread at a time).
    private let cursor = BlockCursor()

    init(engine: LSMEngine, snapshot: LSMEngine.Snapshot) {
        self.engine = engine
        self.snap = snapshot
    }

    deinit { engine.releaseSnapshot(snap.sequence) }

    func get(_ key: [UInt8]) throws -> [UInt8]? {
        if engine.isClosed { throw engine.closedError("get") }
        return try engine.get(key, in: snap, cursor: cursor)
    }

    func scan(_ range: KeyRange, reverse: Bool, limit: Int?,
              _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        if engine.isClosed { throw engine.closedError("scan") }
        try Scanner.scan(snap, range: range, reverse: reverse, limit: limit, visit)
    }
}

/// Turns the merged internal-key stream into user entries as of a sequence number: the
/// newest version <= sequence of each key, deletions hiding older versions.
enum Scanner {
    static func scan(_ s: LSMEngine.Snapshot, range: KeyRange, reverse: Bool, limit: Int?,
                     _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        if let limit, limit <= 0 { return }
        if let end = range.end, !range.start.lexicographicallyPrecedes(end) { return }
        var children: [any InternalIterator] = [s.mem.makeIterator()]
        if let imm = s.imm { children.append(imm.makeIterator()) }
        children.append(contentsOf: s.version.iterators())
        let it = MergingIterator(children: children, reverse: reverse)
        let sequence = s.sequence
        var emitted = 0
        let end = range.end
        if !reverse {
            let start = makeInternalKey(range.start, sequence, .value)
            try start.withUnsafeBytes { try it.seek($0) }
            // The user key last emitted or hidden: older versions of it are skipped.
            let last = KeyBuffer()
            var lastLength = -1
            while it.isValid {
                let k = it.key
                let user = userKey(k)
                if let end, end.withUnsafeBytes({ compareBytes(user, $0) >= 0 }) { break }
                let t = trailer(k)
                if t >> 8 > sequence
                    || (lastLength >= 0 && compareBytes(UnsafeRawBufferPointer(start: last.base, count: lastLength), user) == 0) {
                    try it.advance()
                    continue
                }
                last.reserve(user.count, keeping: 0)
                if user.count > 0 { last.base.copyMemory(from: user.baseAddress!, byteCount: user.count) }
                lastLength = user.count
                if t & 0xFF == UInt64(ValueKind.value.rawValue) {
                    emitted += 1
                    if try !visit(user, it.value) { return }
                    if let limit, emitted >= limit { return }
                }
                try it.advance()
            }
        } else {
            if let end {
                let target = makeInternalKey(end, maxSequence, .value)
                try target.withUnsafeBytes { try it.seekBefore($0) }
            } else {
                try it.seekToLast()
            }
            // Within one user key the reverse stream runs oldest to newest: remember the newest
            // visible version and emit it when the key changes.
            var currentUser: [UInt8] = []
            var haveCurrent = false
            var candidate: ValueKind? = nil
            var candidateValue: [UInt8] = []
            func emit() throws -> Bool {
                guard haveCurrent, candidate == .value else { return true }
                emitted += 1
                let go = try currentUser.withUnsafeBytes { k in
                    try candidateValue.withUnsafeBytes { v in try visit(k, v) }
                }
                if !go { return false }
                if let limit, emitted >= limit { return false }
                return true
            }
            while it.isValid {
                let k = it.key
                let user = userKey(k)
                if range.start.withUnsafeBytes({ compareBytes(user, $0) < 0 }) { break }
                if !haveCurrent || currentUser.withUnsafeBytes({ compareBytes($0, user) != 0 }) {
                    if try !emit() { return }
                    currentUser.removeAll(keepingCapacity: true)
                    currentUser.append(contentsOf: user)
                    haveCurrent = true
                    candidate = nil
                }
                let t = trailer(k)
                if t >> 8 <= sequence {
                    candidate = ValueKind(rawValue: UInt8(t & 0xFF))
                    candidateValue.removeAll(keepingCapacity: true)
                    candidateValue.append(contentsOf: it.value)
                }
                try it.advance()
            }
            _ = try emit()
        }
    }
}
