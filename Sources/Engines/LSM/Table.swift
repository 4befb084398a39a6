#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import EngineAPI
import Synchronization

/// An open, immutable table file, mapped read-only into memory (like LevelDB's mmap'ed tables
/// and LMDB's map): reads search blocks in place in the mapping, with no copy, no decoding and
/// no block cache of our own; the kernel's page cache keeps hot blocks in memory. Each data
/// block's CRC is checked the first time it is read after the table is opened (one flag per
/// block); the footer, index and filter are checked at open. Tables are immutable, so a
/// verified block stays valid; truncating a table file behind the engine's back is not
/// supported (touching the missing pages would raise SIGBUS).
///
/// Shared by every version that lists it; when the last reference goes away the mapping is
/// released, and the file is deleted if the engine marked it obsolete (no longer in the current
/// version). Swift's reference counting is the "no reader needs it" test.
final class Table: @unchecked Sendable {
    let number: UInt64
    let path: String
    let fileSize: UInt64
    private let mapping: UnsafeRawBufferPointer
    private let index: IndexBlock
    private let filter: UnsafeRawBufferPointer
    /// verified[i] != 0: data block i passed its CRC check.
    private let verified: UnsafeMutablePointer<Atomic<UInt8>>
    private let obsoleteLock = Lock()
    private var obsolete = false

    init(path: String, number: UInt64) throws {
        self.path = path
        self.number = number
        let fd = try FileSystem.open(path, flags: O_RDONLY, operation: "open table")
        let size: Int
        do {
            size = try FileSystem.fileSize(fd: fd, path: path)
        } catch {
            close(fd)
            throw error
        }
        guard size >= TableFormat.footerSize else {
            close(fd)
            throw FileSystem.corruption(path, "open table", offset: 0, "file too short for a table footer (\(size) bytes)")
        }
        let address = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0)
        let mapError = errno
        close(fd)
        guard let address, address != MAP_FAILED else { throw FileSystem.ioError(path, "mmap table", mapError) }
        let mapping = UnsafeRawBufferPointer(start: address, count: size)
        do {
            let footerOffset = size - TableFormat.footerSize
            let f = UnsafeRawBufferPointer(rebasing: mapping[footerOffset...])
            guard loadFixed64(f, 40) == TableFormat.magic else {
                throw FileSystem.corruption(path, "open table", offset: footerOffset, "bad table magic")
            }
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: f[0..<36])) == loadFixed32(f, 36) else {
                throw FileSystem.corruption(path, "open table", offset: footerOffset, "footer checksum mismatch")
            }
            guard loadFixed32(f, 32) == TableFormat.formatVersion else {
                throw FileSystem.corruption(path, "open table", offset: footerOffset + 32,
                                            "unsupported table format version \(loadFixed32(f, 32)) (this build reads version \(TableFormat.formatVersion) only)")
            }
            let indexHandle = BlockHandle(offset: loadFixed64(f, 0), size: loadFixed64(f, 8))
            let filterHandle = BlockHandle(offset: loadFixed64(f, 16), size: loadFixed64(f, 24))
            let indexRaw = try Table.checkedBlock(mapping, indexHandle, path: path)
            guard let idx = IndexBlock(indexRaw) else {
                throw FileSystem.corruption(path, "open table", offset: Int(indexHandle.offset), "malformed index block")
            }
            for (i, h) in idx.handles.enumerated() where !Table.inBounds(h, fileSize: size) {
                throw FileSystem.corruption(path, "open table", offset: Int(indexHandle.offset),
                                            "index entry \(i) points past the end of the file")
            }
            self.filter = try Table.checkedBlock(mapping, filterHandle, path: path)
            self.index = idx
        } catch {
            munmap(address, size)
            throw error
        }
        self.mapping = mapping
        self.fileSize = UInt64(size)
        verified = .allocate(capacity: max(index.count, 1))
        for i in 0..<max(index.count, 1) { (verified + i).initialize(to: Atomic<UInt8>(0)) }
    }

    deinit {
        verified.deinitialize(count: max(index.count, 1))
        verified.deallocate()
        munmap(UnsafeMutableRawPointer(mutating: mapping.baseAddress!), mapping.count)
        if obsoleteLock.withLock({ obsolete }) { FileSystem.remove(path) }
    }

    /// Marks the file for deletion once nothing references it.
    func markObsolete() { obsoleteLock.withLock { obsolete = true } }

    private static func inBounds(_ h: BlockHandle, fileSize: Int) -> Bool {
        h.offset <= UInt64(fileSize) && h.size <= UInt64(fileSize) && Int(h.offset) + Int(h.size) + 4 <= fileSize
    }

    /// The contents of the block at `handle` in `mapping`, after checking its bounds and CRC.
    private static func checkedBlock(_ mapping: UnsafeRawBufferPointer, _ handle: BlockHandle,
                                     path: String) throws -> UnsafeRawBufferPointer {
        let offset = Int(truncatingIfNeeded: handle.offset), size = Int(truncatingIfNeeded: handle.size)
        guard inBounds(handle, fileSize: mapping.count) else {
            throw FileSystem.corruption(path, "read block", offset: offset, "block handle past end of file")
        }
        let raw = UnsafeRawBufferPointer(rebasing: mapping[offset..<(offset + size)])
        guard CRC32C.checksum(raw) == loadFixed32(mapping, offset + size) else {
            throw FileSystem.corruption(path, "read block", offset: offset, "block checksum mismatch")
        }
        return raw
    }

    /// Data block `i` (0 ..< indexBlock.count), checked on its first read: its CRC, and that its
    /// first and last keys lie within the range the index gives it, so that lookups the index
    /// sends to it find what the file holds (a checksum-valid table can still be a writer's
    /// garbage; it is reported as corruption, never answered wrongly).
    func block(_ i: Int) throws -> Block {
        let h = index.handles[i]
        let offset = Int(truncatingIfNeeded: h.offset)
        if verified[i].load(ordering: .acquiring) == 0 {
            _ = try Table.checkedBlock(mapping, h, path: path)
        }
        guard let b = Block(UnsafeRawBufferPointer(start: mapping.baseAddress! + offset, count: Int(truncatingIfNeeded: h.size))) else {
            throw FileSystem.corruption(path, "read block", offset: offset, "malformed data block")
        }
        if verified[i].load(ordering: .acquiring) == 0 {
            guard blockWithinIndexBounds(b, i) else {
                throw FileSystem.corruption(path, "read block", offset: offset, "data block keys outside the index's bounds")
            }
            verified[i].store(1, ordering: .releasing)
        }
        return b
    }

    /// Block `i`'s first key is above index key i-1 and its last key at most index key i; an
    /// empty block passes. False also when the block is malformed (the caller reports it).
    private func blockWithinIndexBounds(_ b: Block, _ i: Int) -> Bool {
        let cursor = BlockCursor()
        cursor.reset(b)
        guard cursor.seekToFirst() else { return false }
        guard cursor.isValid else { return true }
        if i > 0, index.withKey(i - 1, { compareInternalKeys(cursor.key, $0) <= 0 }) { return false }
        guard cursor.seekToLast(), cursor.isValid else { return false }
        return index.withKey(i, { compareInternalKeys(cursor.key, $0) <= 0 })
    }

    var indexBlock: IndexBlock { index }

    /// The corruption error for a malformed data block `i`.
    func malformedBlock(_ i: Int) -> EngineError {
        FileSystem.corruption(path, "read block", offset: i >= 0 && i < index.count ? Int(index.handles[i].offset) : 0,
                              "malformed data block")
    }

    /// The newest entry for the user key of `target` (an internal key at the view's sequence).
    /// `cursor` is scratch space owned by the caller.
    func get(_ target: UnsafeRawBufferPointer, hash: UInt64, cursor: BlockCursor) throws -> LookupResult {
        guard BloomFilter.mayContain(filter, hash: hash) else { return .notFound }
        let i = index.lowerBound(target)
        guard i < index.count else { return .notFound }
        cursor.reset(try block(i))
        defer { cursor.reset(nil) }
        guard cursor.seek(target) else { throw malformedBlock(i) }
        guard cursor.isValid else { return .notFound }
        let k = cursor.key
        guard compareBytes(userKey(k), userKey(target)) == 0 else { return .notFound }
        if trailer(k) & 0xFF == UInt64(ValueKind.deletion.rawValue) { return .deleted }
        return .found(Array(cursor.value))
    }

    func makeIterator() -> TableIterator { TableIterator(self) }
}

/// Iterates a table: an index position plus a cursor in the current data block.
final class TableIterator: InternalIterator {
    private let table: Table
    private var blockIndex = -1
    private let cursor = BlockCursor()

    init(_ table: Table) {
        self.table = table
    }

    var isValid: Bool { cursor.isValid }
    var key: UnsafeRawBufferPointer { cursor.key }
    var value: UnsafeRawBufferPointer { cursor.value }

    /// Loads block `i` into the cursor (unpositioned); false when `i` is out of range.
    private func load(_ i: Int) throws -> Bool {
        guard i >= 0 && i < table.indexBlock.count else {
            cursor.reset(nil)
            blockIndex = -1
            return false
        }
        blockIndex = i
        cursor.reset(try table.block(i))
        return true
    }

    @inline(__always) private func check(_ ok: Bool) throws {
        if !ok { throw table.malformedBlock(blockIndex) }
    }

    private func skipEmptyForward() throws {
        while !cursor.isValid && blockIndex >= 0 {
            guard try load(blockIndex + 1) else { return }
            try check(cursor.seekToFirst())
        }
    }

    private func skipEmptyBackward() throws {
        while !cursor.isValid && blockIndex >= 0 {
            guard try load(blockIndex - 1) else { return }
            try check(cursor.seekToLast())
        }
    }

    func seekToFirst() throws {
        if try load(0) { try check(cursor.seekToFirst()) }
        try skipEmptyForward()
    }

    func seekToLast() throws {
        if try load(table.indexBlock.count - 1) { try check(cursor.seekToLast()) }
        try skipEmptyBackward()
    }

    func seek(_ target: UnsafeRawBufferPointer) throws {
        if try load(table.indexBlock.lowerBound(target)) { try check(cursor.seek(target)) }
        try skipEmptyForward()
    }

    func seekBefore(_ target: UnsafeRawBufferPointer) throws {
        let i = table.indexBlock.lowerBound(target)
        if i >= table.indexBlock.count {
            try seekToLast()
            return
        }
        if try load(i) { try check(cursor.seekBefore(target)) }
        try skipEmptyBackward()
    }

    func next() throws {
        try check(cursor.next())
        try skipEmptyForward()
    }

    func prev() throws {
        try check(cursor.prev())
        try skipEmptyBackward()
    }
}
