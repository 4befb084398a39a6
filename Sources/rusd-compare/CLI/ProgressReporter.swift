#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Progress on stderr: a redrawn bar on a terminal, plain lines otherwise (logs, CI).
final class ProgressReporter: Sendable {
    private struct State {
        var label = ""
        var total = 0
        var done = 0
        var lastDraw: UInt64 = 0
    }
    private let state = Mutex(State())
    let isTerminal: Bool

    init() { isTerminal = isatty(STDERR_FILENO) == 1 }

    /// Starts a task of `total` steps (0 when unknown).
    func begin(_ label: String, total: Int) {
        state.withLock { $0 = State(label: label, total: total, done: 0, lastDraw: 0) }
        if isTerminal { draw(force: true) } else { emit("\(label) ...\n") }
    }

    /// Marks `steps` more steps done (thread-safe; redraws at most 10 times a second).
    func advance(_ steps: Int = 1) {
        state.withLock { $0.done += steps }
        if isTerminal { draw(force: false) }
    }

    /// Ends the task with a one-line result.
    func finish(_ result: String) {
        let label = state.withLock { $0.label }
        if isTerminal { emit("\r\u{1B}[2K\(label): \(result)\n") } else { emit("\(label): \(result)\n") }
    }

    /// A plain message line.
    func note(_ line: String) {
        if isTerminal { emit("\r\u{1B}[2K\(line)\n") } else { emit(line + "\n") }
    }

    private func draw(force: Bool) {
        let now = monotonicNanos()
        let snapshot: State? = state.withLock { s in
            if !force && now - s.lastDraw < 100_000_000 { return nil }
            s.lastDraw = now
            return s
        }
        guard let s = snapshot else { return }
        let width = 30
        if s.total > 0 {
            let fraction = min(1, Double(s.done) / Double(s.total))
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            emit("\r\u{1B}[2K\(s.label) [\(bar)] \(Int(fraction * 100))%")
        } else {
            emit("\r\u{1B}[2K\(s.label) ... \(s.done)")
        }
    }

    private func emit(_ text: String) {
        writeToStandardError(text)
    }
}

/// Writes text to file descriptor 2 (unbuffered; no shared C `stderr` stream involved).
func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(STDERR_FILENO, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { break }
        offset += n
    }
    bytes.removeAll()
}
