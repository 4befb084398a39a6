#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Small pthread-based locks shared by the engines in this package (`package` access: not part
// of EngineAPI's public surface). Not on any hot path that would justify anything fancier.

/// A non-recursive mutex.
package final class EngineMutex: @unchecked Sendable {
    fileprivate let mutex: UnsafeMutablePointer<pthread_mutex_t>

    package init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    package func lock() { precondition(pthread_mutex_lock(mutex) == 0) }
    package func unlock() { precondition(pthread_mutex_unlock(mutex) == 0) }

    package func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// A readers-writer lock. Readers are preferred (glibc's default), so a thread that already
/// holds the shared side may take it again while a writer waits (no self-deadlock in nested
/// reads); the exclusive side is taken rarely (map growth, close).
package final class EngineRWLock: @unchecked Sendable {
    private let rwlock: UnsafeMutablePointer<pthread_rwlock_t>

    package init() {
        rwlock = .allocate(capacity: 1)
        rwlock.initialize(to: pthread_rwlock_t())
        precondition(pthread_rwlock_init(rwlock, nil) == 0, "pthread_rwlock_init failed")
    }

    deinit {
        pthread_rwlock_destroy(rwlock)
        rwlock.deallocate()
    }

    package func withShared<T>(_ body: () throws -> T) rethrows -> T {
        precondition(pthread_rwlock_rdlock(rwlock) == 0)
        defer { pthread_rwlock_unlock(rwlock) }
        return try body()
    }

    package func withExclusive<T>(_ body: () throws -> T) rethrows -> T {
        precondition(pthread_rwlock_wrlock(rwlock) == 0)
        defer { pthread_rwlock_unlock(rwlock) }
        return try body()
    }
}

/// A value guarded by an `EngineMutex`.
package final class EngineLocked<Value>: @unchecked Sendable {
    private let mutex = EngineMutex()
    private var value: Value

    package init(_ value: Value) { self.value = value }

    package func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        try mutex.withLock { try body(&value) }
    }
}

/// A condition variable used with an `EngineMutex`.
package final class EngineCondition: @unchecked Sendable {
    private let cond: UnsafeMutablePointer<pthread_cond_t>

    package init() {
        cond = .allocate(capacity: 1)
        cond.initialize(to: pthread_cond_t())
        precondition(pthread_cond_init(cond, nil) == 0, "pthread_cond_init failed")
    }

    deinit {
        pthread_cond_destroy(cond)
        cond.deallocate()
    }

    /// Waits until signalled (spurious wake-ups possible); `mutex` must be held.
    package func wait(_ mutex: EngineMutex) { mutex.wait(on: cond, seconds: nil) }

    /// Waits at most `seconds`; `mutex` must be held.
    package func wait(_ mutex: EngineMutex, seconds: Double) { mutex.wait(on: cond, seconds: seconds) }

    package func signal() { pthread_cond_signal(cond) }
    package func broadcast() { pthread_cond_broadcast(cond) }
}

extension EngineMutex {
    fileprivate func wait(on cond: UnsafeMutablePointer<pthread_cond_t>, seconds: Double?) {
        guard let seconds else {
            pthread_cond_wait(cond, mutex)
            return
        }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let nanos = Int(now.tv_nsec) + Int(seconds * 1e9)
        var deadline = timespec()
        deadline.tv_sec = now.tv_sec + nanos / 1_000_000_000
        deadline.tv_nsec = nanos % 1_000_000_000
        pthread_cond_timedwait(cond, mutex, &deadline)
    }
}
