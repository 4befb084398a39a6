#if canImport(Glibc)
import Glibc
#endif
import EngineAPI

/// rusd's snapshot format: every engine key and value of one consistent read view, in key
/// order, independent of the engine that wrote it (the keys and values are the MVCC store's
/// own layout, `StorageLayout`), so a snapshot of an lmdb store restores into leveldb or lsm.
///
///     offset  size  field
///     0       8     magic "RUSDSNAP"
///     8       4     format version (UInt32 LE) = 1
///     12      …     records, each: tag 0x01, key length (UInt32 LE), value length (UInt32 LE),
///                   key, value
///     …       9     end: tag 0x00, record count (UInt64 LE)
///     …       …     zero bytes up to the next multiple of 512
///     …       32    SHA-256 of every byte before it
///
/// The length is therefore 512·n + 32, the shape `etcdctl snapshot save` requires of etcd's
/// snapshots (bbolt pages plus the SHA-256 etcd appends); etcdctl saves it unchanged. An etcd
/// snapshot is refused by `rusd snapshot restore` (wrong magic) and vice versa.
public enum SnapshotFormat {
    public static let magic: [UInt8] = Array("RUSDSNAP".utf8)
    public static let version: UInt32 = 1
    public static let alignment = 512
    static let recordTag: UInt8 = 0x01
    static let endTag: UInt8 = 0x00

    /// A snapshot file failed verification or parsing. Names the file and offset.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }
}

extension MVCCStore {
    /// Streams a snapshot of the store (see `SnapshotFormat`) taken from one engine read view:
    /// consistent, and writes keep going while it streams. `emit` receives chunks of about
    /// `chunkSize` bytes in order (the last one ends with the SHA-256); returning false stops
    /// the stream early (e.g. the client went away). Returns the total length emitted.
    @discardableResult
    public func writeSnapshot(chunkSize: Int = 32 * 1024, emit: ([UInt8]) -> Bool) throws(MVCCError) -> Int {
        let view: any ReadView
        do { view = try engine.readView() } catch { throw .engine("\(error)") }
        var sha = SHA256()
        var chunk: [UInt8] = []
        chunk.reserveCapacity(chunkSize + 64)
        var total = 0
        var stopped = false
        func flush(_ force: Bool) -> Bool {
            guard force || chunk.count >= chunkSize else { return true }
            sha.update(chunk)
            total += chunk.count
            let go = emit(chunk)
            chunk.removeAll(keepingCapacity: true)
            return go
        }
        chunk.append(contentsOf: SnapshotFormat.magic)
        chunk.appendLittleEndian(SnapshotFormat.version)
        var count: UInt64 = 0
        do {
            try view.scan(.all, reverse: false, limit: nil) { k, v in
                chunk.append(SnapshotFormat.recordTag)
                chunk.appendLittleEndian(UInt32(k.count))
                chunk.appendLittleEndian(UInt32(v.count))
                chunk.append(contentsOf: k)
                chunk.append(contentsOf: v)
                count += 1
                if !flush(false) { stopped = true; return false }
                return true
            }
        } catch {
            throw .engine("\(error)")
        }
        if stopped { return total }
        chunk.append(SnapshotFormat.endTag)
        chunk.appendLittleEndian(count)
        let unpadded = total + chunk.count
        let padded = (unpadded + SnapshotFormat.alignment - 1) / SnapshotFormat.alignment * SnapshotFormat.alignment
        chunk.append(contentsOf: repeatElement(0, count: padded - unpadded))
        sha.update(chunk)
        chunk.append(contentsOf: sha.finalize())
        total += chunk.count
        _ = emit(chunk)
        return total
    }
}

/// Reads a snapshot file: `verify` checks length, SHA-256 and structure without keeping the
/// data; `load` then writes its records into an engine.
public struct SnapshotFile {
    public let path: String

    public init(path: String) {
        self.path = path
    }

    /// Checks the file: length 512·n + 32, trailing SHA-256, magic, version, record structure,
    /// zero padding. Returns the number of records. Throws `SnapshotFormat.Failure` naming the
    /// file and offset of the first problem.
    @discardableResult
    public func verify() throws(SnapshotFormat.Failure) -> UInt64 {
        let reader = try FileReader(path: path)
        let size = reader.size
        guard size >= 32 + SnapshotFormat.alignment, (size - 32) % SnapshotFormat.alignment == 0 else {
            throw fail("size \(size) is not 512·n + 32 bytes (a snapshot ends with a 32-byte SHA-256 after 512-byte aligned data)", offset: 0)
        }
        var sha = SHA256()
        var offset = 0
        let body = size - 32
        while offset < body {
            let n = min(1 << 20, body - offset)
            let bytes = try reader.read(at: offset, count: n)
            sha.update(bytes)
            offset += n
        }
        let stored = try reader.read(at: body, count: 32)
        guard sha.finalize() == stored else {
            throw fail("SHA-256 mismatch: the 32-byte trailer does not match the data before it (corrupt or truncated snapshot)", offset: body)
        }
        return try parse(reader, body: body) { _, _ in }
    }

    /// Verifies the file, then writes every record into `engine` in batches of about
    /// `batchBytes` (the last write synced). The engine should be empty. Returns the count.
    @discardableResult
    public func load(into engine: any StorageEngine, batchBytes: Int = 4 << 20) throws -> UInt64 {
        try verify()
        let reader = try FileReader(path: path)
        var batch = WriteBatch()
        var engineError: (any Error)?
        let count = try parse(reader, body: reader.size - 32) { k, v in
            guard engineError == nil else { return }
            batch.put(k, v)
            if batch.byteCount >= batchBytes {
                do { try engine.write(batch, sync: false) } catch { engineError = error }
                batch = WriteBatch()
            }
        }
        if let engineError { throw engineError }
        try engine.write(batch, sync: true)
        return count
    }

    private func fail(_ message: String, offset: Int) -> SnapshotFormat.Failure {
        SnapshotFormat.Failure(description: "snapshot \(path), offset \(offset): \(message)")
    }

    /// Parses the records of the verified body [0, body).
    private func parse(_ reader: FileReader, body: Int,
                       _ visit: ([UInt8], [UInt8]) -> Void) throws(SnapshotFormat.Failure) -> UInt64 {
        var stream = BufferedStream(reader: reader, end: body)
        let head = try stream.take(12)
        guard Array(head[0..<8]) == SnapshotFormat.magic else {
            throw fail("not a rusd snapshot: magic is not \"RUSDSNAP\" (an etcd snapshot is restored with etcdctl, not rusd)", offset: 0)
        }
        let version = head.withUnsafeBytes { $0.loadLittleEndianUInt32(at: 8) }
        guard version == SnapshotFormat.version else {
            throw fail("format version \(version) is not supported (this build reads \(SnapshotFormat.version))", offset: 8)
        }
        var count: UInt64 = 0
        while true {
            let at = stream.offset
            let tag = try stream.take(1)[0]
            if tag == SnapshotFormat.endTag {
                let recorded = try stream.take(8).withUnsafeBytes { $0.loadLittleEndianUInt64(at: 0) }
                guard recorded == count else {
                    throw fail("end marker records \(recorded) entries, found \(count)", offset: at)
                }
                let paddingAt = stream.offset
                let padding = try stream.take(body - paddingAt)
                guard padding.allSatisfy({ $0 == 0 }) else {
                    throw fail("non-zero byte in the padding after the end marker", offset: paddingAt)
                }
                return count
            }
            guard tag == SnapshotFormat.recordTag else {
                throw fail("unknown record tag 0x\(String(tag, radix: 16))", offset: at)
            }
            let lengths = try stream.take(8)
            let (kl, vl) = lengths.withUnsafeBytes { (Int($0.loadLittleEndianUInt32(at: 0)), Int($0.loadLittleEndianUInt32(at: 4))) }
            guard kl + vl <= body - stream.offset else {
                throw fail("record lengths \(kl)+\(vl) run past the end of the data", offset: at)
            }
            let key = try stream.take(kl)
            let value = try stream.take(vl)
            visit(key, value)
            count += 1
        }
    }
}

/// Positional reads of a file.
private final class FileReader {
    let path: String
    let fd: Int32
    let size: Int

    init(path: String) throws(SnapshotFormat.Failure) {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw SnapshotFormat.Failure(description: "cannot open snapshot \(path): \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw SnapshotFormat.Failure(description: "cannot stat snapshot \(path): \(message)")
        }
        size = Int(st.st_size)
    }

    deinit { close(fd) }

    func read(at offset: Int, count: Int) throws(SnapshotFormat.Failure) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw SnapshotFormat.Failure(description: "snapshot \(path): read failed at offset \(offset + done): "
                    + (n == 0 ? "unexpected end of file" : String(cString: strerror(errno))))
            }
            done += n
        }
        return out
    }
}

/// Sequential reads through a 1 MiB buffer, bounded by `end`.
private struct BufferedStream {
    let reader: FileReader
    let end: Int
    var offset = 0
    private var buffer: [UInt8] = []
    private var bufferStart = 0

    init(reader: FileReader, end: Int) {
        self.reader = reader
        self.end = end
    }

    mutating func take(_ n: Int) throws(SnapshotFormat.Failure) -> [UInt8] {
        guard n <= end - offset else {
            throw SnapshotFormat.Failure(description: "snapshot \(reader.path): truncated record: \(n) bytes needed at offset \(offset), \(end - offset) left")
        }
        if n == 0 { return [] }
        var out: [UInt8] = []
        out.reserveCapacity(n)
        while out.count < n {
            let inBuffer = bufferStart + buffer.count - offset
            if inBuffer <= 0 {
                bufferStart = offset
                buffer = try reader.read(at: offset, count: min(max(1 << 20, n - out.count), end - offset))
                continue
            }
            let from = offset - bufferStart
            let take = min(inBuffer, n - out.count)
            out.append(contentsOf: buffer[from ..< from + take])
            offset += take
        }
        return out
    }
}
