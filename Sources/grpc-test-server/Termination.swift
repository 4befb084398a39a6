import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Blocks until SIGTERM or SIGINT, runs `onSignal` (off the main thread), then returns.
func waitForTermination(_ onSignal: @escaping @Sendable () -> Void) {
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    let done = DispatchSemaphore(value: 0)
    var sources: [any DispatchSourceSignal] = []
    for sig in [SIGTERM, SIGINT] {
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            onSignal()
            done.signal()
        }
        source.resume()
        sources.append(source)
    }
    done.wait()
    for source in sources { source.cancel() }
}
