/// A growable buffer holding one key, reused from entry to entry.
final class KeyBuffer {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int

    init(capacity: Int = 64) {
        self.capacity = capacity
        base = .allocate(byteCount: capacity, alignment: 8)
    }

    deinit { base.deallocate() }

    /// Makes room for `n` bytes, keeping the first `keep`.
    @inline(__always) func reserve(_ n: Int, keeping keep: Int) {
        if n > capacity { grow(n, keeping: keep) }
    }

    private func grow(_ n: Int, keeping keep: Int) {
        let c = max(n, capacity * 2)
        let p = UnsafeMutableRawPointer.allocate(byteCount: c, alignment: 8)
        if keep > 0 { p.copyMemory(from: base, byteCount: keep) }
        base.deallocate()
        base = p
        capacity = c
    }
}

/// A position in one `Block`, decoding entries in place: the current internal key is rebuilt
/// in a `KeyBuffer` from the reference key's shared prefix (the previous entry's, or the block's
/// first one at a restart point), the entry's user key delta and the trailer its tag codes; the
/// value points into the block. Moving backwards re-scans from the previous restart point (at
/// most one restart interval), as LevelDB does.
///
/// Every positioning call returns false when the block turns out to be malformed (the caller
/// reports corruption naming the file and block); `isValid` is then false.
final class BlockCursor {
    private(set) var block: Block?
    private let keys = KeyBuffer()
    private var keyLength = 0
    private var sequence: UInt64 = 0
    private var current = 0
    private var nextOffset = 0
    private var restartIndex = 0
    private var valueStart = 0
    private var valueLength = 0
    private(set) var isValid = false

    /// Positions nowhere in `block` (or in none).
    func reset(_ block: Block?) {
        self.block = block
        isValid = false
        keyLength = 0
    }

    /// Valid until the next positioning call.
    var key: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: keys.base, count: keyLength) }
    var value: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: block!.base + valueStart, count: valueLength) }

    /// Decodes the entry at `offset`: a restart entry (coded against the block's first entry)
    /// when `restart`, else one coded against the current entry.
    @inline(__always) private func parse(_ b: Block, at offset: Int, restart: Bool) -> Bool {
        guard let e = b.entry(at: offset) else { return fail() }
        let reference: UInt64?
        if offset == 0 {
            guard e.shared == 0 else { return fail() }
            reference = nil
        } else if restart {
            guard e.shared <= b.firstKeyLength else { return fail() }
            keys.reserve(e.shared &+ e.unshared &+ 8, keeping: 0)
            keys.base.copyMemory(from: b.base + b.firstKeyOffset, byteCount: e.shared)
            reference = b.firstSequence
        } else {
            guard keyLength >= 8, e.shared <= keyLength &- 8 else { return fail() }
            reference = sequence
        }
        guard let t = EntryTag.trailer(e.tag, against: reference) else { return fail() }
        let n = e.shared &+ e.unshared
        keys.reserve(n &+ 8, keeping: e.shared)
        (keys.base + e.shared).copyMemory(from: b.base + e.delta, byteCount: e.unshared)
        keys.base.storeBytes(of: t.littleEndian, toByteOffset: n, as: UInt64.self)
        keyLength = n &+ 8
        sequence = t >> 8
        current = offset
        valueStart = e.valueStart
        valueLength = e.valueLength
        nextOffset = e.end
        isValid = true
        return true
    }

    @inline(__always) private func fail() -> Bool {
        isValid = false
        keyLength = 0
        return false
    }

    @inline(__always) private func invalidate() -> Bool {
        isValid = false
        keyLength = 0
        return true
    }

    /// Starts at restart point `i`.
    @inline(__always) private func parseRestart(_ b: Block, _ i: Int) -> Bool {
        restartIndex = i
        keyLength = 0
        return parse(b, at: b.restart(i), restart: true)
    }

    /// Moves to the entry at `nextOffset`, keeping `restartIndex` current.
    @inline(__always) private func parseNext(_ b: Block) -> Bool {
        if restartIndex &+ 1 < b.restartCount && b.restart(restartIndex &+ 1) <= nextOffset {
            restartIndex &+= 1
            // An entry at a restart point is coded against the first entry; past it is malformed.
            return b.restart(restartIndex) == nextOffset ? parse(b, at: nextOffset, restart: true) : fail()
        }
        return parse(b, at: nextOffset, restart: false)
    }

    func seekToFirst() -> Bool {
        guard let b = block, !b.isEmpty else { return invalidate() }
        return parseRestart(b, 0)
    }

    func seekToLast() -> Bool {
        guard let b = block, !b.isEmpty else { return invalidate() }
        guard parseRestart(b, b.restartCount - 1) else { return false }
        while nextOffset < b.dataLimit {
            guard parse(b, at: nextOffset, restart: false) else { return false }
        }
        return true
    }

    /// The first entry whose key >= target (invalid when there is none).
    func seek(_ target: UnsafeRawBufferPointer) -> Bool {
        guard let b = block, !b.isEmpty else { return invalidate() }
        guard let r = b.restartInterval(for: target) else { return fail() }
        guard parseRestart(b, r) else { return false }
        while compareInternalKeys(key, target) < 0 {
            if nextOffset >= b.dataLimit { return end(b) }
            guard parseNext(b) else { return false }
        }
        return true
    }

    /// The last entry whose key < target (invalid when there is none).
    func seekBefore(_ target: UnsafeRawBufferPointer) -> Bool {
        guard seek(target) else { return false }
        if !isValid { return seekToLast() }
        return prev()
    }

    func next() -> Bool {
        guard let b = block, isValid else { return true }
        if nextOffset >= b.dataLimit { return end(b) }
        return parseNext(b)
    }

    /// Past the last entry: the end, unless a restart point was never reached (the last entry
    /// spans it), which makes the block malformed: a backward scan, starting from that restart
    /// point, would see other entries than a forward one.
    @inline(__always) private func end(_ b: Block) -> Bool {
        restartIndex &+ 1 < b.restartCount ? fail() : invalidate()
    }

    func prev() -> Bool {
        guard let b = block, isValid else { return true }
        let original = current
        while b.restart(restartIndex) >= original {
            if restartIndex == 0 { return invalidate() }
            restartIndex -= 1
        }
        guard parseRestart(b, restartIndex) else { return false }
        while nextOffset < original {
            guard parse(b, at: nextOffset, restart: false) else { return false }
        }
        return nextOffset == original ? true : fail()
    }
}
