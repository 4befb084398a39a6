#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import Synchronization

/// The servers this tool started, so that Ctrl-C or SIGTERM kills them (by PID) before exiting.
final class ChildProcessRegistry: @unchecked Sendable {
    static let shared = ChildProcessRegistry()
    private let pids = Mutex<Set<pid_t>>([])
    private let directories = Mutex<[String]>([])
    /// Guarded by `sourcesLock`; kept only so the dispatch sources stay alive.
    private var sources: [DispatchSourceSignal] = []
    private let sourcesLock = NSLock()

    func add(_ pid: pid_t) { pids.withLock { _ = $0.insert(pid) } }
    func remove(_ pid: pid_t) { pids.withLock { _ = $0.remove(pid) } }
    /// A scratch directory removed when the tool is interrupted.
    func addScratchDirectory(_ path: String) { directories.withLock { $0.append(path) } }

    /// Installs SIGINT/SIGTERM handlers that kill every registered child, remove the scratch
    /// directories and exit with 130.
    func installSignalHandlers() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [self] in
                let children = pids.withLock { $0 }
                for pid in children { kill(pid, SIGKILL); _ = Subprocess.waitForExit(pid) }
                for dir in directories.withLock({ $0 }) { try? FileManager.default.removeItem(atPath: dir) }
                writeToStandardError("\nrusd-compare: interrupted; killed \(children.count) server process(es)\n")
                exit(130)
            }
            source.resume()
            sourcesLock.lock()
            sources.append(source)
            sourcesLock.unlock()
        }
    }
}
