#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A running cluster member that finds the log trimmed past its applied index (it was too slow
/// or stopped applying) must not skip entries: it stops gracefully as on SIGTERM and runs again
/// with the same arguments, and that start catches up from the newest snapshot
/// (`SharedLogCatchUp`). Same process ID, same output: a supervisor sees a slow stop, not an
/// exit.
final class Rebootstrap: Sendable {
    private let requested = Atomic<Bool>(false)

    /// Starts the graceful stop (once).
    func request() {
        if !requested.exchange(true, ordering: .relaxed) { kill(getpid(), SIGTERM) }
    }

    var isRequested: Bool { requested.load(ordering: .relaxed) }

    /// Replaces this process with a fresh rusd of the same arguments; returns only if that
    /// fails. Call after the store is closed. Every descriptor but stdin/stdout/stderr is
    /// closed by the exec (SwiftNIO's sockets are not close-on-exec): a PostgreSQL session
    /// left open would keep holding this member's name lock.
    func execAgain() {
        if let dir = opendir("/proc/self/fd") {
            let own = dirfd(dir)
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if let fd = Int32(name), fd > 2, fd != own { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            }
            closedir(dir)
        }
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }
}
