#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process whose stdout is a pipe we read; killed by PID only.
package final class ChildProcess {
    package let pid: pid_t
    private var stdoutFD: Int32
    private var buffered: [UInt8] = []
    private var reaped = false
    package private(set) var exitStatus: Int32 = 0

    package init(executable: String, arguments: [String]) throws {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw PosixError("pipe", executable) }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, nil, argv, environ)
        close(fds[1])
        guard rc == 0 else {
            close(fds[0])
            throw PosixError("posix_spawn", executable, rc)
        }
        pid = child
        stdoutFD = fds[0]
    }

    deinit {
        if !reaped {
            kill(pid, SIGKILL)
            _ = waitForExit()
        }
        if stdoutFD >= 0 { close(stdoutFD) }
    }

    /// Reads what the child wrote until `deadline` (monotonic ms) or until `stop` accepts a
    /// line; returns the complete lines read.
    package func readLines(until deadline: Double, stop: (String) -> Bool = { _ in false }) -> [String] {
        var lines: [String] = []
        while true {
            lines.append(contentsOf: takeLines())
            if lines.contains(where: stop) { return lines }
            let remaining = deadline - monotonicMilliseconds()
            if remaining <= 0 { return lines }
            var pfd = pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(max(1, remaining)))
            if ready > 0 {
                if !readAvailable() { return lines + takeLines() }  // EOF: the child exited
            }
        }
    }

    /// Everything left in the pipe (after the child died), as lines.
    package func drainLines() -> [String] {
        while readAvailable() {}
        return takeLines()
    }

    /// false at EOF.
    private func readAvailable() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let n = chunk.withUnsafeMutableBytes { read(stdoutFD, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { return true }
        guard n > 0 else { return false }
        buffered.append(contentsOf: chunk[0..<n])
        return true
    }

    private func takeLines() -> [String] {
        var lines: [String] = []
        while let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
            lines.append(String(decoding: buffered[..<newline], as: UTF8.self))
            buffered.removeSubrange(...newline)
        }
        return lines
    }

    package func killHard() { kill(pid, SIGKILL) }

    /// Waits for the child; returns the raw wait status.
    @discardableResult
    package func waitForExit() -> Int32 {
        if reaped { return exitStatus }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        reaped = true
        exitStatus = status
        return status
    }

    /// Whether the wait status says "killed by SIGKILL".
    package var wasKilledBySIGKILL: Bool { (exitStatus & 0x7F) == SIGKILL }
}
