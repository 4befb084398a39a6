/// Merges child iterators into one ordered sequence. The direction is fixed at creation:
/// a forward merger supports `seek`/`seekToFirst`/`next`, a reverse one
/// `seekBefore`/`seekToLast`/`prev` (scans never change direction midway).
///
/// Besides the current child it remembers the runner-up (the best of the others): children
/// that did not move keep their keys, so after an advance the current child stays current
/// while its new key still comes before the runner-up's, at the cost of one comparison. Only
/// when it does not (a table's range ends, or ranges overlap) are all children compared again.
/// A bulk scan of tables with disjoint ranges (revision keys are written in order) compares
/// once per entry instead of once per child.
final class MergingIterator {
    private let children: [any InternalIterator]
    private let reverse: Bool
    private var current = -1
    /// The best valid child other than `current` (-1: none).
    private var runnerUp = -1

    init(children: [any InternalIterator], reverse: Bool) {
        self.children = children
        self.reverse = reverse
    }

    var isValid: Bool { current >= 0 }
    var key: UnsafeRawBufferPointer { children[current].key }
    var value: UnsafeRawBufferPointer { children[current].value }

    /// Whether `a` comes before `b` in the merger's direction.
    @inline(__always) private func precedes(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        let r = compareInternalKeys(a, b)
        return reverse ? r > 0 : r < 0
    }

    /// Compares every valid child: sets `current` (the first of equal bests) and `runnerUp`.
    private func pick() {
        current = -1
        runnerUp = -1
        var best: UnsafeRawBufferPointer? = nil
        var second: UnsafeRawBufferPointer? = nil
        for (i, c) in children.enumerated() where c.isValid {
            let k = c.key
            if let b = best {
                if precedes(k, b) {
                    second = b
                    runnerUp = current
                    best = k
                    current = i
                } else if second == nil || precedes(k, second!) {
                    second = k
                    runnerUp = i
                }
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
        let c = children[current]
        if reverse { try c.prev() } else { try c.next() }
        if c.isValid && (runnerUp < 0 || precedes(c.key, children[runnerUp].key)) { return }
        pick()
    }
}
