#if canImport(Glibc)
import Glibc
#endif
import EngineAPI

/// The on-disk layout of a data directory:
///
///     DATA_DIR/                (mode 0700, like etcd's)
///       member/
///         engine               the engine name that wrote this store, one line ("lmdb\n"):
///                              EngineAPI's EngineMarker parses and checks it
///         lock                 held with flock while a rusd process uses the directory
///         store/               the engine's own files
///
/// A data dir written by one engine is refused by another, naming both: engines do not share
/// file formats. Migrate with `rusd snapshot restore`.
final class DataDirectory {
    let path: String
    let engine: String
    private let lockDescriptor: Int32

    var memberPath: String { path + "/member" }
    var storePath: String { memberPath + "/store" }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Creates or opens the directory for `engine`, checks the engine marker and takes the lock.
    init(path: String, engine: String) throws {
        self.path = path
        self.engine = engine
        let member = path + "/member"
        for dir in [path, member] {
            if mkdir(dir, 0o700) != 0 && errno != EEXIST {
                throw Failure(description: "cannot create data directory \(dir): \(String(cString: strerror(errno)))")
            }
        }
        guard access(member, W_OK | R_OK | X_OK) == 0 else {
            throw Failure(description: "cannot access data directory \(member): \(String(cString: strerror(errno)))")
        }
        let markerPath = member + "/engine"
        if let recorded = Self.readSmallFile(markerPath) {
            do {
                try EngineMarker.check(recorded, engine: engine, markerPath: markerPath, dataDirectory: path)
            } catch {
                throw Failure(description: error.description)
            }
        } else if Self.directoryHasEntries(member + "/store") {
            throw Failure(description: "data directory \(path) has a store but no engine marker (\(markerPath)); refusing to guess its engine")
        } else {
            try Self.writeFileDurably(markerPath, contents: engine + "\n")
        }
        let fd = open(member + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw Failure(description: "cannot open lock file \(member)/lock: \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw Failure(description: "data directory \(path) is in use by another process (lock \(member)/lock is held)")
        }
        if mkdir(member + "/store", 0o700) != 0 && errno != EEXIST {
            close(fd)
            throw Failure(description: "cannot create \(member)/store: \(String(cString: strerror(errno)))")
        }
        lockDescriptor = fd
    }

    deinit {
        flock(lockDescriptor, LOCK_UN)
        close(lockDescriptor)
    }

    /// The first `EngineMarker.readLimit` bytes of the file, nil if it cannot be read.
    private static func readSmallFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: EngineMarker.readLimit)
        let n = read(fd, &buffer, buffer.count)
        guard n >= 0 else { return nil }
        return Array(buffer[0..<n])
    }

    private static func directoryHasEntries(_ path: String) -> Bool {
        guard let dir = opendir(path) else { return false }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { return true }
        }
        return false
    }

    /// Writes via a temporary file, fsync, rename, fsync of the directory.
    static func writeFileDurably(_ path: String, contents: String) throws {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(description: "cannot write \(tmp): \(String(cString: strerror(errno)))") }
        let bytes = Array(contents.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0, rename(tmp, path) == 0 else {
            throw Failure(description: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        let dirPath = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
        let dfd = open(dirPath.isEmpty ? "." : dirPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }
}
