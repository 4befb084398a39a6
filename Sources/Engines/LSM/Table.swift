#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EngineAPI

/// An open, immutable table file. Shared by every version that lists it; when the last
/// reference goes away the file descriptor is closed, and the file is deleted if the engine
/// marked it obsolete (no longer in the current version). Swift's reference counting is the
/// "no reader needs it" test.
final class Table: @unchecked Sendable {
    let number: UInt64
    let path: String
    let fileSize: UInt64
    private let fd: Int32
    private let index: Block
    private let filter: [UInt8]
    private let cache: BlockCache
    private let obsoleteLock = Lock()
    private var obsolete = false

    init(path: String, number: UInt64, cache: BlockCache) throws {
        self.path = path
        self.number = number
        self.cache = cache
        let fd = try FileSystem.open(path, flags: O_RDONLY, operation: "open table")
        do {
            let size = try FileSystem.fileSize(fd: fd, path: path)
            guard size >= TableFormat.footerSize else {
                throw FileSystem.corruption(path, "open table", offset: 0, "file too short for a table footer (\(size) bytes)")
            }
            var footer = [UInt8](repeating: 0, count: TableFormat.footerSize)
            let footerOffset = size - TableFormat.footerSize
            _ = try footer.withUnsafeMutableBytes {
                try FileSystem.pread(fd: fd, path: path, into: $0, offset: footerOffset)
            }
            let parsed = try footer.withUnsafeBytes { f -> (BlockHandle, BlockHandle) in
                guard loadFixed64(f, 40) == TableFormat.magic else {
                    throw FileSystem.corruption(path, "open table", offset: footerOffset, "bad table magic")
                }
                guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: f[0..<36])) == loadFixed32(f, 36) else {
                    throw FileSystem.corruption(path, "open table", offset: footerOffset, "footer checksum mismatch")
                }
                guard loadFixed32(f, 32) == TableFormat.formatVersion else {
                    throw FileSystem.corruption(path, "open table", offset: footerOffset,
                                                "unsupported table format version \(loadFixed32(f, 32))")
                }
                return (BlockHandle(offset: loadFixed64(f, 0), size: loadFixed64(f, 8)),
                        BlockHandle(offset: loadFixed64(f, 16), size: loadFixed64(f, 24)))
            }
            let indexRaw = try Table.readRaw(fd: fd, path: path, handle: parsed.0, fileSize: size)
            guard let idx = indexRaw.withUnsafeBytes({ Block($0) }) else {
                throw FileSystem.corruption(path, "open table", offset: Int(parsed.0.offset), "malformed index block")
            }
            let filter = try Table.readRaw(fd: fd, path: path, handle: parsed.1, fileSize: size)
            self.fd = fd
            self.fileSize = UInt64(size)
            self.index = idx
            self.filter = filter
        } catch {
            close(fd)
            throw error
        }
    }

    deinit {
        close(fd)
        if obsoleteLock.withLock({ obsolete }) { FileSystem.remove(path) }
    }

    /// Marks the file for deletion once nothing references it.
    func markObsolete() { obsoleteLock.withLock { obsolete = true } }

    /// Reads a block and verifies its CRC.
    private static func readRaw(fd: Int32, path: String, handle: BlockHandle, fileSize: Int) throws -> [UInt8] {
        let offset = Int(handle.offset), size = Int(handle.size)
        guard handle.offset <= UInt64(fileSize), handle.size <= UInt64(fileSize), offset + size + 4 <= fileSize else {
            throw FileSystem.corruption(path, "read block", offset: offset, "block handle past end of file")
        }
        var raw = [UInt8](repeating: 0, count: size + 4)
        let n = try raw.withUnsafeMutableBytes { try FileSystem.pread(fd: fd, path: path, into: $0, offset: offset) }
        guard n == size + 4 else {
            throw FileSystem.corruption(path, "read block", offset: offset, "short block read")
        }
        let ok = raw.withUnsafeBytes { r in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: r[0..<size])) == loadFixed32(r, size)
        }
        guard ok else {
            throw FileSystem.corruption(path, "read block", offset: offset, "block checksum mismatch")
        }
        raw.removeLast(4)
        return raw
    }

    /// The data block at `handle`, from the cache or the file (read straight into the block's
    /// own buffer, CRC-checked, decoded).
    func block(_ handle: BlockHandle, fillCache: Bool = true) throws -> Block {
        if let b = cache.get(file: number, offset: handle.offset) { return b }
        let offset = Int(handle.offset), size = Int(handle.size)
        guard handle.offset <= fileSize, handle.size <= fileSize, UInt64(offset + size + 4) <= fileSize else {
            throw FileSystem.corruption(path, "read block", offset: offset, "block handle past end of file")
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size + 4, alignment: 8)
        let n: Int
        do {
            n = try FileSystem.pread(fd: fd, path: path, into: buffer, offset: offset)
        } catch {
            buffer.deallocate()
            throw error
        }
        let raw = UnsafeRawBufferPointer(buffer)
        guard n == size + 4,
              CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<size])) == loadFixed32(raw, size) else {
            buffer.deallocate()
            throw FileSystem.corruption(path, "read block", offset: offset,
                                        n == size + 4 ? "block checksum mismatch" : "short block read")
        }
        guard let b = Block(adopting: buffer, count: size) else {
            throw FileSystem.corruption(path, "read block", offset: offset, "malformed data block")
        }
        if fillCache { cache.insert(file: number, offset: handle.offset, block: b) }
        return b
    }

    var indexBlock: Block { index }

    func handle(at i: Int) throws -> BlockHandle {
        guard let h = BlockHandle.decode(index.value(i)) else {
            throw FileSystem.corruption(path, "read index", offset: 0, "malformed block handle in index entry \(i)")
        }
        return h
    }

    /// The newest entry for the user key of `target` (an internal key at the view's sequence).
    func get(_ target: UnsafeRawBufferPointer, hash: UInt64) throws -> LookupResult {
        guard BloomFilter.mayContain(filter, hash: hash) else { return .notFound }
        let i = index.lowerBound(target)
        guard i < index.count else { return .notFound }
        let b = try block(try handle(at: i))
        let j = b.lowerBound(target)
        guard j < b.count else { return .notFound }
        let k = b.key(j)
        guard compareBytes(userKey(k), userKey(target)) == 0 else { return .notFound }
        if trailer(k) & 0xFF == UInt64(ValueKind.deletion.rawValue) { return .deleted }
        return .found(Array(b.value(j)))
    }

    func makeIterator(fillCache: Bool = true) -> TableIterator { TableIterator(self, fillCache: fillCache) }
}

/// Iterates a table: an index position plus a position in the current data block.
final class TableIterator: InternalIterator {
    private let table: Table
    private let fillCache: Bool
    private var blockIndex = -1
    private var block: Block?
    private var position = 0

    init(_ table: Table, fillCache: Bool) {
        self.table = table
        self.fillCache = fillCache
    }

    var isValid: Bool { block != nil }
    var key: UnsafeRawBufferPointer { block!.key(position) }
    var value: UnsafeRawBufferPointer { block!.value(position) }

    private func load(_ i: Int) throws -> Bool {
        guard i >= 0 && i < table.indexBlock.count else {
            block = nil
            blockIndex = -1
            return false
        }
        blockIndex = i
        let b = try table.block(try table.handle(at: i), fillCache: fillCache)
        block = b
        return b.count > 0
    }

    private func skipEmptyForward() throws {
        while let b = block, position >= b.count {
            if !(try load(blockIndex + 1)) { if block == nil { return } }
            position = 0
        }
    }

    private func skipEmptyBackward() throws {
        while block != nil, position < 0 {
            if try load(blockIndex - 1) { position = block!.count - 1 } else if block == nil { return } else { position = -1 }
        }
    }

    func seekToFirst() throws {
        _ = try load(0)
        position = 0
        try skipEmptyForward()
    }

    func seekToLast() throws {
        _ = try load(table.indexBlock.count - 1)
        position = (block?.count ?? 0) - 1
        try skipEmptyBackward()
    }

    func seek(_ target: UnsafeRawBufferPointer) throws {
        let i = table.indexBlock.lowerBound(target)
        _ = try load(i)
        position = block?.lowerBound(target) ?? 0
        try skipEmptyForward()
    }

    func seekBefore(_ target: UnsafeRawBufferPointer) throws {
        let i = table.indexBlock.lowerBound(target)
        if i >= table.indexBlock.count {
            try seekToLast()
            return
        }
        _ = try load(i)
        position = (block?.lowerBound(target) ?? 0) - 1
        try skipEmptyBackward()
    }

    func next() throws {
        position += 1
        try skipEmptyForward()
    }

    func prev() throws {
        position -= 1
        try skipEmptyBackward()
    }
}
