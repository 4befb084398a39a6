#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Errors from starting or talking to child processes.
struct SubprocessError: Error, CustomStringConvertible {
    var description: String
}

/// The result of a finished child process.
struct ProcessOutput: Sendable {
    var exitStatus: Int32
    var stdout: String
    var stderr: String
    /// Wall time from spawn to exit, in nanoseconds.
    var elapsedNanos: UInt64
    var succeeded: Bool { exitStatus == 0 }
}

/// posix_spawn-based child processes: no Foundation run loop, exact timing, PIDs we own.
enum Subprocess {
    /// Resolves `name` against PATH unless it already contains a slash. Returns nil if not found.
    static func resolveExecutable(_ name: String) -> String? {
        if name.contains("/") {
            return access(name, X_OK) == 0 ? name : nil
        }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Spawns `executable` with `arguments`; stdout and stderr go to the given descriptors
    /// (or /dev/null when nil). Returns the child's PID.
    static func spawn(_ executable: String, _ arguments: [String], stdoutFD: Int32?, stderrFD: Int32?,
                      stdinFD: Int32? = nil, environment: [String: String]? = nil) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let fd = stdinFD {
            posix_spawn_file_actions_adddup2(&actions, fd, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        if let fd = stdoutFD {
            posix_spawn_file_actions_adddup2(&actions, fd, 1)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
        if let fd = stderrFD {
            posix_spawn_file_actions_adddup2(&actions, fd, 2)
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let env = environment ?? ProcessInfo.processInfo.environment
        let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { envp.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard rc == 0 else {
            throw SubprocessError(description: "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// Runs a command to completion, capturing stdout and stderr (each read on its own thread so
    /// neither pipe can fill up and block the child). `stdin` is written to the child's input.
    static func run(_ executable: String, _ arguments: [String], stdin: String? = nil,
                    environment: [String: String]? = nil) throws -> ProcessOutput {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0], inPipe: [Int32] = [0, 0]
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else {
            throw SubprocessError(description: "pipe: \(String(cString: strerror(errno)))")
        }
        var stdinRead: Int32? = nil
        if stdin != nil {
            guard pipe(&inPipe) == 0 else { throw SubprocessError(description: "pipe failed") }
            stdinRead = inPipe[0]
        }
        let start = monotonicNanos()
        let pid: pid_t
        do {
            pid = try spawn(executable, arguments, stdoutFD: outPipe[1], stderrFD: errPipe[1],
                            stdinFD: stdinRead, environment: environment)
        } catch {
            [outPipe[0], outPipe[1], errPipe[0], errPipe[1]].forEach { close($0) }
            if stdin != nil { close(inPipe[0]); close(inPipe[1]) }
            throw error
        }
        close(outPipe[1]); close(errPipe[1])
        if let text = stdin {
            close(inPipe[0])
            var bytes = Array(text.utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeMutableBytes { write(inPipe[1], $0.baseAddress! + offset, $0.count - offset) }
                if n <= 0 { break }
                offset += n
            }
            bytes.removeAll()
            close(inPipe[1])
        }
        let errBox = ThreadResult<[UInt8]>()
        let errFD = errPipe[0]
        let thread = Thread { errBox.set(readAll(errFD)) }
        thread.start()
        let out = readAll(outPipe[0])
        let status = waitForExit(pid)
        let err = errBox.wait()
        close(outPipe[0]); close(errPipe[0])
        return ProcessOutput(exitStatus: status, stdout: String(decoding: out, as: UTF8.self),
                             stderr: String(decoding: err, as: UTF8.self), elapsedNanos: monotonicNanos() - start)
    }

    /// Blocks until `pid` exits; returns its exit status (128+signal when killed by a signal).
    static func waitForExit(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        return exitCode(status)
    }

    /// Non-blocking: the exit status if `pid` has exited, nil while it runs.
    static func pollExit(_ pid: pid_t) -> Int32? {
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid { return exitCode(status) }
        if rc < 0 { return -1 }
        return nil
    }

    private static func exitCode(_ status: Int32) -> Int32 {
        let sig = status & 0x7f
        if sig == 0 { return (status >> 8) & 0xff }
        return 128 + sig
    }

    private static func readAll(_ fd: Int32) -> [UInt8] {
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { result.append(contentsOf: buffer[0..<n]) }
            else if n < 0 && errno == EINTR { continue }
            else { break }
        }
        return result
    }
}

/// A value handed from one thread to another exactly once.
final class ThreadResult<T: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: T?
    func set(_ v: T) { condition.lock(); value = v; condition.signal(); condition.unlock() }
    func wait() -> T {
        condition.lock(); defer { condition.unlock() }
        while value == nil { condition.wait() }
        return value!
    }
}
