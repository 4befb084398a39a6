#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: which one, on what, and errno's text.
package struct PosixError: Error, CustomStringConvertible {
    package var operation: String
    package var path: String
    package var code: Int32

    package init(_ operation: String, _ path: String, _ code: Int32 = errno) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    package var message: String { "\(operation) \(path): \(String(cString: strerror(code))) (errno \(code))" }
    package var description: String { message }
}

/// One regular file found by `PosixFiles.listFiles`.
package struct FileEntry: Sendable {
    package var path: String
    package var name: String
    /// Logical size (st_size).
    package var size: UInt64
    /// Allocated size on disk (st_blocks * 512).
    package var allocated: UInt64
}

/// The few file-system operations the engines and the conformance suite need, on top of the C
/// library only (EngineAPI has no dependencies). `package` access: not public API.
package enum PosixFiles {
    package static func exists(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0
    }

    package static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    package static func fileSize(_ path: String) throws -> UInt64 {
        var st = stat()
        guard stat(path, &st) == 0 else { throw PosixError("stat", path) }
        return UInt64(st.st_size)
    }

    /// mkdir -p.
    package static func makeDirectories(_ path: String) throws {
        if isDirectory(path) { return }
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            if !isDirectory(prefix) {
                if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw PosixError("mkdir", prefix) }
            }
            prefix += "/"
        }
    }

    /// A new empty directory under $TMPDIR (or /tmp).
    package static func makeTemporaryDirectory(prefix: String) throws -> String {
        let base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(base)/\(prefix).XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard result != nil else { throw PosixError("mkdtemp", base) }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Names in a directory, without "." and "..".
    package static func directoryNames(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw PosixError("opendir", path) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Regular files under `path`, recursively, sorted by path.
    package static func listFiles(_ path: String, recursive: Bool = true) throws -> [FileEntry] {
        var out: [FileEntry] = []
        for name in try directoryNames(path) {
            let full = path + "/" + name
            var st = stat()
            guard lstat(full, &st) == 0 else {
                if errno == ENOENT { continue }  // removed meanwhile (compaction)
                throw PosixError("lstat", full)
            }
            switch st.st_mode & S_IFMT {
            case S_IFREG:
                out.append(FileEntry(path: full, name: name, size: UInt64(st.st_size),
                                     allocated: UInt64(st.st_blocks) * 512))
            case S_IFDIR where recursive:
                out.append(contentsOf: try listFiles(full, recursive: true))
            default:
                break
            }
        }
        return out
    }

    /// rm -rf. A missing path is not an error.
    package static func removeTree(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw PosixError("lstat", path)
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for name in try directoryNames(path) { try removeTree(path + "/" + name) }
            if rmdir(path) != 0 && errno != ENOENT { throw PosixError("rmdir", path) }
        } else if unlink(path) != 0 && errno != ENOENT {
            throw PosixError("unlink", path)
        }
    }

    package static func readFile(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PosixError("open", path) }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw PosixError("read", path)
            }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    /// Writes `bytes` at `offset` of an existing file (or a new one), optionally fsyncing.
    package static func write(_ bytes: [UInt8], to path: String, at offset: UInt64 = 0,
                               create: Bool = false, truncate: Bool = false, sync: Bool = false) throws {
        var flags = O_WRONLY | O_CLOEXEC
        if create { flags |= O_CREAT }
        if truncate { flags |= O_TRUNC }
        let fd = open(path, flags, 0o644)
        guard fd >= 0 else { throw PosixError("open", path) }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes {
                pwrite(fd, $0.baseAddress! + done, $0.count - done, off_t(offset) + off_t(done))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw PosixError("pwrite", path)
            }
            done += n
        }
        if sync && fsync(fd) != 0 { throw PosixError("fsync", path) }
    }

    /// Writes a whole file durably and atomically: tmp file, fsync, rename, fsync directory.
    package static func replaceFileDurably(_ path: String, with bytes: [UInt8]) throws {
        let tmp = path + ".tmp"
        try write(bytes, to: tmp, create: true, truncate: true, sync: true)
        guard rename(tmp, path) == 0 else { throw PosixError("rename", tmp) }
        try fsyncPath(parentDirectory(of: path))
    }

    package static func truncateFile(_ path: String, to size: UInt64) throws {
        guard truncate(path, off_t(size)) == 0 else { throw PosixError("truncate", path) }
    }

    /// fsync on a file or directory.
    package static func fsyncPath(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw PosixError("open", path) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw PosixError("fsync", path) }
    }

    package static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let parent = String(path[..<slash])
        return parent.isEmpty ? "/" : parent
    }
}

/// An exclusive advisory lock (flock) on a file, held until `release()` or deinit. flock locks
/// belong to the open file description, so a second open of the same directory conflicts even
/// inside one process.
package final class DirectoryLock: @unchecked Sendable {
    private var fd: Int32
    package let path: String

    /// Creates `path` if missing and locks it; throws when another holder has it.
    package init(path: String) throws {
        self.path = path
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PosixError("open", path) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            close(fd)
            throw PosixError("flock", path, code)
        }
    }

    package func release() {
        if fd >= 0 {
            close(fd)  // drops the flock
            fd = -1
        }
    }

    deinit { release() }
}
