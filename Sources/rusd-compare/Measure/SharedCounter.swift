import Synchronization

/// A counter shared by worker tasks: each `takeNext()` returns a distinct index, from 0.
final class SharedCounter: Sendable {
    private let value = Atomic<Int>(0)
    func takeNext() -> Int { value.add(1, ordering: .relaxed).oldValue }
}
