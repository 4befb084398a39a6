/// Merges child iterators into one ordered sequence. The direction is fixed at creation:
/// a forward merger supports `seek`/`seekToFirst`/`next`, a reverse one
/// `seekBefore`/`seekToLast`/`prev` (scans never change direction midway).
final class MergingIterator {
    private let children: [any InternalIterator]
    private let reverse: Bool
    private var current = -1

    init(children: [any InternalIterator], reverse: Bool) {
        self.children = children
        self.reverse = reverse
    }

    var isValid: Bool { current >= 0 }
    var key: UnsafeRawBufferPointer { children[current].key }
    var value: UnsafeRawBufferPointer { children[current].value }

    private func pick() {
        current = -1
        var best: UnsafeRawBufferPointer? = nil
        for (i, c) in children.enumerated() where c.isValid {
            let k = c.key
            if let b = best {
                let r = compareInternalKeys(k, b)
                if reverse ? r > 0 : r < 0 { best = k; current = i }
            } else {
                best = k
                current = i
            }
        }
    }

    func seek(_ target: UnsafeRawBufferPointer) throws {
        for c in children { try c.seek(target) }
        pick()
    }

    func seekToFirst() throws {
        for c in children { try c.seekToFirst() }
        pick()
    }

    func seekBefore(_ target: UnsafeRawBufferPointer) throws {
        for c in children { try c.seekBefore(target) }
        pick()
    }

    func seekToLast() throws {
        for c in children { try c.seekToLast() }
        pick()
    }

    /// Advances in the merger's direction.
    func advance() throws {
        if reverse { try children[current].prev() } else { try children[current].next() }
        pick()
    }
}
