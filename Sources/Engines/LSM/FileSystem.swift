#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EngineAPI

/// Thin POSIX file helpers. Every failure becomes an `EngineError` naming the file.
enum FileSystem {
    static func errnoMessage(_ e: Int32 = errno) -> String {
        String(cString: strerror(e)) + " (errno \(e))"
    }

    static func ioError(_ path: String, _ operation: String, _ e: Int32 = errno) -> EngineError {
        let kind: EngineError.Kind = (e == ENOSPC || e == EDQUOT) ? .full : .io
        return EngineError(kind, engine: "lsm", path: path, operation: operation, message: errnoMessage(e))
    }

    static func corruption(_ path: String, _ operation: String, offset: Int, _ what: String) -> EngineError {
        EngineError(.corruption, engine: "lsm", path: path, operation: operation,
                    message: "\(what) at offset \(offset)")
    }

    static func open(_ path: String, flags: Int32, operation: String) throws -> Int32 {
        let fd = Glibc.open(path, flags | O_CLOEXEC, 0o644)
        if fd < 0 { throw ioError(path, operation) }
        return fd
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func fileSize(fd: Int32, path: String) throws -> Int {
        var st = stat()
        if fstat(fd, &st) != 0 { throw ioError(path, "stat") }
        return Int(st.st_size)
    }

    /// Reads exactly `count` bytes at `offset` (short only at end of file).
    static func pread(fd: Int32, path: String, into buffer: UnsafeMutableRawBufferPointer, offset: Int) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = Glibc.pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError(path, "read")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    static func pwrite(fd: Int32, path: String, _ buffer: UnsafeRawBufferPointer, offset: Int) throws {
        var done = 0
        while done < buffer.count {
            let n = Glibc.pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ioError(path, "write")
            }
            done += n
        }
    }

    static func readAll(_ path: String) throws -> [UInt8] {
        let fd = try open(path, flags: O_RDONLY, operation: "open")
        defer { close(fd) }
        let size = try fileSize(fd: fd, path: path)
        var out = [UInt8](repeating: 0, count: size)
        let n = try out.withUnsafeMutableBytes { try pread(fd: fd, path: path, into: $0, offset: 0) }
        if n < size { out.removeLast(size - n) }
        return out
    }

    static func dataSync(fd: Int32, path: String) throws {
        #if os(Linux)
        if fdatasync(fd) != 0 { throw ioError(path, "fdatasync") }
        #else
        if fsync(fd) != 0 { throw ioError(path, "fsync") }
        #endif
    }

    static func syncDirectory(_ path: String) throws {
        let fd = try open(path, flags: O_RDONLY | O_DIRECTORY, operation: "open directory")
        defer { close(fd) }
        if fsync(fd) != 0 { throw ioError(path, "fsync directory") }
    }

    /// Writes `bytes` to `path` through a temporary file, fsyncs it, renames it into place and
    /// fsyncs the directory: readers see the old or the new content, never a mix.
    static func writeAtomically(_ bytes: [UInt8], to path: String, directory: String) throws {
        let tmp = path + ".tmp"
        let fd = try open(tmp, flags: O_WRONLY | O_CREAT | O_TRUNC, operation: "create")
        do {
            try bytes.withUnsafeBytes { try pwrite(fd: fd, path: tmp, $0, offset: 0) }
            if fsync(fd) != 0 { throw ioError(tmp, "fsync") }
        } catch {
            close(fd)
            throw error
        }
        close(fd)
        if rename(tmp, path) != 0 { throw ioError(path, "rename") }
        try syncDirectory(directory)
    }

    static func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw ioError(path, "list") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// Allocated bytes of a file (st_blocks * 512), 0 when it vanished.
    static func allocatedBytes(_ path: String) -> UInt64 {
        var st = stat()
        if stat(path, &st) != 0 { return 0 }
        return UInt64(st.st_blocks) * 512
    }

    static func createDirectory(_ path: String) throws {
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw ioError(path, "mkdir") }
    }

    static func remove(_ path: String) {
        unlink(path)
    }
}

/// File names inside an engine directory.
enum FileNames {
    static func log(_ dir: String, _ number: UInt64) -> String { dir + "/" + pad(number) + ".log" }
    static func table(_ dir: String, _ number: UInt64) -> String { dir + "/" + pad(number) + ".sst" }
    static func manifest(_ dir: String, _ number: UInt64) -> String { dir + "/MANIFEST-" + pad(number) }
    static func current(_ dir: String) -> String { dir + "/CURRENT" }
    static func lock(_ dir: String) -> String { dir + "/LOCK" }
    /// Written when a store is created, before CURRENT: tells our stores from LevelDB's, which
    /// also have CURRENT and MANIFEST files.
    static let markerName = "LSM-STORE"
    static func marker(_ dir: String) -> String { dir + "/" + markerName }

    static func pad(_ n: UInt64) -> String {
        let s = String(n)
        return s.count >= 6 ? s : String(repeating: "0", count: 6 - s.count) + s
    }

    enum Kind { case log, table, manifest, temp, marker, other }

    /// Classifies a directory entry name and extracts its number. A number is 1 to 19 ASCII
    /// digits (what `pad` writes; below 10^19, so `n + 1` cannot overflow): a name with a sign,
    /// spaces or more digits is another program's file (`.other`), never replayed or deleted.
    static func parse(_ name: String) -> (Kind, UInt64) {
        if name.hasSuffix(".tmp") { return (.temp, 0) }
        if name == markerName { return (.marker, 0) }
        if name.hasPrefix("MANIFEST-"), let n = number(name.utf8.dropFirst(9)) { return (.manifest, n) }
        if name.hasSuffix(".log"), let n = number(name.utf8.dropLast(4)) { return (.log, n) }
        if name.hasSuffix(".sst"), let n = number(name.utf8.dropLast(4)) { return (.table, n) }
        return (.other, 0)
    }

    private static func number(_ digits: Substring.UTF8View) -> UInt64? {
        guard (1...19).contains(digits.count) else { return nil }
        var n: UInt64 = 0
        for byte in digits {
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            n = n * 10 + UInt64(byte - UInt8(ascii: "0"))
        }
        return n
    }
}
