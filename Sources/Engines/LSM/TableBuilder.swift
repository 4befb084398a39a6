#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EngineAPI

/// Metadata of a finished table.
struct TableSummary {
    var fileSize: UInt64
    var smallest: [UInt8]
    var largest: [UInt8]
    var entries: Int
    var deletions: Int
}

/// Writes one sorted table file. Keys must be added in increasing internal-key order.
final class TableBuilder {
    let path: String
    private let fd: Int32
    private var out: [UInt8] = []
    private var fileOffset = 0
    private var data = BlockBuilder()
    private var index = BlockBuilder()
    private var hashes: [UInt64] = []
    private var lastUserKey: [UInt8] = []
    private var lastKey: [UInt8] = []
    /// The handle of the last data block written, whose index entry waits for the next key
    /// (its index key is a short separator between the block's last key and that one).
    private var pendingHandle: BlockHandle?
    private var smallest: [UInt8] = []
    private(set) var entries = 0
    private(set) var deletions = 0
    private var finished = false
    private let withFilter: Bool

    /// Creates the table file. `filter: false` writes an empty filter block (every lookup then
    /// searches the index and a block): for tables of the bottom level. A point lookup that
    /// reaches the bottom level has nowhere else to look, and the engine's reader (the MVCC
    /// store) looks up revisions it knows exist, so there the filter would cost a hash and
    /// seven probes per hit to save work on rare misses, plus 10 bits per key written
    /// (RocksDB's optimize_filters_for_hits makes the same choice).
    init(path: String, filter: Bool = true) throws {
        self.path = path
        self.withFilter = filter
        fd = try FileSystem.open(path, flags: O_WRONLY | O_CREAT | O_TRUNC, operation: "create table")
        out.reserveCapacity(256 << 10)
    }

    deinit {
        close(fd)
        if !finished { FileSystem.remove(path) }
    }

    /// Bytes the file will have so far (approximately).
    var estimatedSize: Int { fileOffset + out.count + data.estimatedSize }

    func add(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws {
        if entries == 0 { smallest = Array(key) }
        if let h = pendingHandle {
            addIndexEntry(IndexSeparator.between(lastKey, key), h)
            pendingHandle = nil
        }
        let user = userKey(key)
        let sameUser = lastUserKey.withUnsafeBytes { compareBytes($0, user) == 0 } && entries > 0
        if !sameUser && withFilter {
            hashes.append(BloomFilter.hash(user))
            lastUserKey.removeAll(keepingCapacity: true)
            lastUserKey.append(contentsOf: user)
        }
        data.add(key, value)
        lastKey.removeAll(keepingCapacity: true)
        lastKey.append(contentsOf: key)
        entries += 1
        if trailer(key) & 0xFF == UInt64(ValueKind.deletion.rawValue) { deletions += 1 }
        if data.estimatedSize >= TableFormat.blockSize { try flushDataBlock() }
    }

    private func writeBlock(_ contents: [UInt8]) throws -> BlockHandle {
        let handle = BlockHandle(offset: UInt64(fileOffset + out.count), size: UInt64(contents.count))
        out.append(contentsOf: contents)
        out.appendFixed32(CRC32C.checksum(contents))
        if out.count >= 256 << 10 { try drain() }
        return handle
    }

    private func drain() throws {
        try out.withUnsafeBytes { try FileSystem.pwrite(fd: fd, path: path, $0, offset: fileOffset) }
        fileOffset += out.count
        out.removeAll(keepingCapacity: true)
    }

    private func flushDataBlock() throws {
        guard !data.isEmpty else { return }
        pendingHandle = try writeBlock(data.finish())
    }

    private func addIndexEntry(_ key: [UInt8], _ handle: BlockHandle) {
        var hv: [UInt8] = []
        handle.encode(into: &hv)
        key.withUnsafeBytes { k in hv.withUnsafeBytes { index.add(k, $0) } }
    }

    /// Writes filter, index and footer, syncs the file. Returns its summary.
    func finish() throws -> TableSummary {
        try flushDataBlock()
        if let h = pendingHandle {
            addIndexEntry(IndexSeparator.successor(lastKey), h)
            pendingHandle = nil
        }
        let filter = withFilter ? BloomFilter.build(hashes: hashes) : []
        let filterHandle = try writeBlock(filter)
        let indexHandle = try writeBlock(index.finish())
        var footer: [UInt8] = []
        footer.appendFixed64(indexHandle.offset)
        footer.appendFixed64(indexHandle.size)
        footer.appendFixed64(filterHandle.offset)
        footer.appendFixed64(filterHandle.size)
        footer.appendFixed32(TableFormat.formatVersion)
        footer.appendFixed32(CRC32C.checksum(footer))
        footer.appendFixed64(TableFormat.magic)
        out.append(contentsOf: footer)
        try drain()
        try FileSystem.dataSync(fd: fd, path: path)
        finished = true
        return TableSummary(fileSize: UInt64(fileOffset), smallest: smallest, largest: lastKey, entries: entries,
                            deletions: deletions)
    }

    /// Abandons the table: the file is removed.
    func abandon() {
        finished = false
    }
}
