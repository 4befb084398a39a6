#if canImport(Glibc)
import Glibc
#endif

/// Random access to the bytes of a database: a file (`BBoltFile`) or memory (`BBoltBytes`).
public protocol BBoltSource {
    /// Bytes that belong to the database (a snapshot's SHA-256 trailer excluded).
    var size: Int { get }
    /// Exactly `count` bytes at `offset`; the reader checked `offset + count <= size`.
    func read(at offset: Int, count: Int) throws(BBoltError) -> [UInt8]
}

/// A database held in memory (tests, fuzzing).
public struct BBoltBytes: BBoltSource {
    public let bytes: [UInt8]
    public var size: Int { bytes.count }
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public func read(at offset: Int, count: Int) throws(BBoltError) -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= bytes.count - count else {
            throw BBoltError("read of \(count) bytes past the end (\(bytes.count) bytes)", offset: offset)
        }
        return Array(bytes[offset ..< offset + count])
    }
}

/// A database file read with pread; `size` may be set below the file size (to leave out a
/// trailer).
public final class BBoltFile: BBoltSource {
    public let path: String
    public let fileSize: Int
    public var size: Int
    private let fd: Int32

    public init(path: String) throws(BBoltError) {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw BBoltError("cannot open \(path): \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw BBoltError("cannot stat \(path): \(message)")
        }
        fileSize = Int(st.st_size)
        size = fileSize
    }

    deinit { close(fd) }

    public func read(at offset: Int, count: Int) throws(BBoltError) -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= size - count else {
            throw BBoltError("\(path): read of \(count) bytes past the end (\(size) bytes)", offset: offset)
        }
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw BBoltError("\(path): " + (n == 0 ? "unexpected end of file" : String(cString: strerror(errno))),
                                 offset: offset + done)
            }
            done += n
        }
        return out
    }
}

/// Reads a bbolt database without trusting it: every page id, element bound, page type,
/// overflow count and meta checksum is checked, each page is visited at most once (a cycle or
/// a page referenced twice is an error), and trees deeper than `maxDepth` are refused. Every
/// problem is a `BBoltError` naming the file offset; nothing traps.
public struct BBoltReader {
    /// A bucket: its root page, or its single leaf page stored inline in the parent's value.
    public enum Bucket: Sendable {
        case page(UInt64)
        case inline([UInt8], offset: Int)
    }

    /// One key of a bucket; `nested` is set when the key names a nested bucket.
    public struct Entry {
        public var key: [UInt8]
        public var value: [UInt8]
        public var nested: Bucket?
    }

    public let source: any BBoltSource
    public let pageSize: Int
    /// Pages in use (the current meta's high-water mark); the database's size is pageCount × pageSize.
    public let pageCount: UInt64
    public let txid: UInt64
    public let root: Bucket
    let freelistPage: UInt64
    static let maxDepth = 64

    /// Reads and checks the meta pages; the valid one with the higher txid is current.
    public init(_ source: any BBoltSource) throws(BBoltError) {
        self.source = source
        guard source.size >= BBoltFormat.pageHeaderSize + 64 else {
            throw BBoltError("file of \(source.size) bytes is too small for a bbolt database", offset: 0)
        }
        let first = try source.read(at: 0, count: BBoltFormat.pageHeaderSize + 64)
        var metas: [(Meta, Int)] = []
        var problems: [String] = []
        // The page size comes from meta 0; if it is damaged, meta 1 is looked for at the usual sizes.
        var candidates: [Int] = []
        switch Meta.parse(first[...], at: 0) {
        case .success(let m):
            metas.append((m, 0))
            candidates = [Int(m.pageSize)]
        case .failure(let e):
            problems.append(e.description)
            candidates = [4096, 8192, 16384, 65536, 1024, 2048, 32768]
        }
        for ps in candidates where ps + BBoltFormat.pageHeaderSize + 64 <= source.size {
            let bytes = try source.read(at: ps, count: BBoltFormat.pageHeaderSize + 64)
            switch Meta.parse(bytes[...], at: ps) {
            case .success(let m) where Int(m.pageSize) == ps:
                metas.append((m, ps))
            case .success:
                problems.append("offset \(ps): meta page 1 has page size different from its position")
            case .failure(let e):
                problems.append(e.description)
            }
            if metas.contains(where: { $0.1 != 0 }) { break }
        }
        guard let (meta, at) = metas.max(by: { $0.0.txid < $1.0.txid }) else {
            throw BBoltError("no valid meta page (not a bbolt database, or both meta pages are corrupt): "
                             + problems.joined(separator: "; "), offset: 0)
        }
        pageSize = Int(meta.pageSize)
        pageCount = meta.pageCount
        txid = meta.txid
        freelistPage = meta.freelist
        root = .page(meta.rootPage)
        guard pageCount >= 3, pageCount <= UInt64(source.size / pageSize) else {
            throw BBoltError("meta page records \(pageCount) pages of \(pageSize) bytes, the file holds \(source.size / pageSize) (truncated?)",
                             offset: at + 56)
        }
        guard meta.rootPage >= 2, meta.rootPage < pageCount else {
            throw BBoltError("root page \(meta.rootPage) out of range 2..<\(pageCount)", offset: at + 32)
        }
        guard meta.freelist == BBoltFormat.noFreelist || (meta.freelist >= 2 && meta.freelist < pageCount) else {
            throw BBoltError("freelist page \(meta.freelist) out of range 2..<\(pageCount)", offset: at + 48)
        }
    }

    /// The database's size in bytes as etcd reports it (pages in use × page size).
    public var byteSize: Int { Int(pageCount) * pageSize }

    /// Calls `body` for every key of `bucket` in key order. `visited` collects page ids across
    /// calls: pass the same set for a whole walk so that a page reachable twice is caught.
    public func forEach(_ bucket: Bucket, visited: VisitedPages,
                        _ body: (Entry) throws -> Void) throws {
        var previous: [UInt8]? = nil
        switch bucket {
        case .page(let pgid):
            // Bucket roots were range-checked where they were read (meta page, bucket header).
            try walk(pgid, referencedAt: pgid < pageCount ? Int(pgid) * pageSize : 32, depth: 0, visited: visited, previous: &previous, body)
        case .inline(let bytes, let offset):
            let page = Page(bytes: bytes[...], offset: offset, pgid: 0)
            guard page.flags == BBoltFormat.leafFlag else {
                throw BBoltError("inline bucket page has flags 0x\(String(page.flags, radix: 16)), expected a leaf", offset: offset + 8)
            }
            try leaf(page, previous: &previous, body)
        }
    }

    /// Checks a whole database: meta, freelist page, every bucket at every depth. The entry
    /// point for fuzzing: any input either passes or throws `BBoltError`.
    public static func validate(bytes: [UInt8]) throws {
        let reader = try BBoltReader(BBoltBytes(bytes))
        try reader.validateAll()
    }

    /// Walks every bucket; returns the number of keys (nested bucket names included).
    @discardableResult
    public func validateAll() throws -> Int {
        let visited = VisitedPages()
        if freelistPage != BBoltFormat.noFreelist {
            let page = try readPage(freelistPage, referencedAt: 48)
            guard page.flags == BBoltFormat.freelistFlag else {
                throw BBoltError("page \(freelistPage) is named the freelist but has flags 0x\(String(page.flags, radix: 16))", offset: page.offset + 8)
            }
            visited.ids.insert(freelistPage)
        }
        var count = 0
        func visit(_ b: Bucket, depth: Int) throws {
            guard depth < Self.maxDepth else { throw BBoltError("buckets nested deeper than \(Self.maxDepth)") }
            try forEach(b, visited: visited) { e in
                count += 1
                if let n = e.nested { try visit(n, depth: depth + 1) }
            }
        }
        try visit(root, depth: 0)
        return count
    }

    // MARK: pages

    struct Page {
        var bytes: ArraySlice<UInt8>
        var offset: Int   // file offset of byte bytes.startIndex
        var pgid: UInt64
        var flags: UInt16 { bytes.bboltLoad(UInt16.self, at: bytes.startIndex + 8) }
        var count: Int { Int(bytes.bboltLoad(UInt16.self, at: bytes.startIndex + 10)) }
    }

    /// Reads page `pgid` with its overflow pages, checking id, range and size.
    /// `referencedAt` is the file offset of what named the page (for the error).
    func readPage(_ pgid: UInt64, referencedAt: Int) throws(BBoltError) -> Page {
        guard pgid >= 2, pgid < pageCount else {
            throw BBoltError("page id \(pgid) out of range 2..<\(pageCount)", offset: referencedAt)
        }
        let offset = Int(pgid) * pageSize
        // One read for a page without overflow (pgid < pageCount <= size / pageSize: in range).
        let header = try source.read(at: offset, count: pageSize)
        let id = header.bboltLoad(UInt64.self, at: 0)
        guard id == pgid else {
            throw BBoltError("page \(pgid) carries id \(id)", offset: offset)
        }
        let overflow = UInt64(header.bboltLoad(UInt32.self, at: 12))
        guard overflow < pageCount - pgid else {
            throw BBoltError("page \(pgid) overflow \(overflow) runs past the last page \(pageCount - 1)", offset: offset + 12)
        }
        guard overflow > 0 else { return Page(bytes: header[...], offset: offset, pgid: pgid) }
        let length = (Int(overflow) + 1) * pageSize
        let bytes = try source.read(at: offset, count: length)
        return Page(bytes: bytes[...], offset: offset, pgid: pgid)
    }

    private func walk(_ pgid: UInt64, referencedAt: Int, depth: Int, visited: VisitedPages, previous: inout [UInt8]?,
                      _ body: (Entry) throws -> Void) throws {
        guard depth < Self.maxDepth else {
            throw BBoltError("tree deeper than \(Self.maxDepth) levels at page \(pgid)", offset: referencedAt)
        }
        guard visited.ids.insert(pgid).inserted else {
            throw BBoltError("page \(pgid) is referenced twice (cycle or shared page)", offset: referencedAt)
        }
        let page = try readPage(pgid, referencedAt: referencedAt)
        let overflow = Int(page.bytes.bboltLoad(UInt32.self, at: page.bytes.startIndex + 12))
        for extra in 0..<overflow {
            guard visited.ids.insert(pgid + UInt64(extra) + 1).inserted else {
                throw BBoltError("overflow page \(pgid + UInt64(extra) + 1) of page \(pgid) is referenced twice", offset: page.offset + 12)
            }
        }
        switch page.flags {
        case BBoltFormat.leafFlag:
            try leaf(page, previous: &previous, body)
        case BBoltFormat.branchFlag:
            let n = page.count
            guard n > 0 else { throw BBoltError("branch page \(pgid) has no elements", offset: page.offset + 10) }
            try checkElementTable(page)
            for i in 0..<n {
                let at = page.bytes.startIndex + BBoltFormat.pageHeaderSize + BBoltFormat.elementSize * i
                let pos = Int(page.bytes.bboltLoad(UInt32.self, at: at))
                let ksize = Int(page.bytes.bboltLoad(UInt32.self, at: at + 4))
                let child = page.bytes.bboltLoad(UInt64.self, at: at + 8)
                _ = try slice(page, element: at, pos: pos, length: ksize)
                let childAt = page.offset + (at - page.bytes.startIndex) + 8
                try walk(child, referencedAt: childAt, depth: depth + 1, visited: visited, previous: &previous, body)
            }
        default:
            throw BBoltError("page \(pgid) has flags 0x\(String(page.flags, radix: 16)) where a branch or leaf page belongs", offset: page.offset + 8)
        }
    }

    private func checkElementTable(_ page: Page) throws(BBoltError) {
        let table = BBoltFormat.pageHeaderSize + BBoltFormat.elementSize * page.count
        guard table <= page.bytes.count else {
            throw BBoltError("page \(page.pgid): \(page.count) elements do not fit in \(page.bytes.count) bytes", offset: page.offset + 10)
        }
    }

    /// Bytes [element + pos, element + pos + length) of the page, checked.
    private func slice(_ page: Page, element at: Int, pos: Int, length: Int) throws(BBoltError) -> ArraySlice<UInt8> {
        let start = at + pos
        guard start <= page.bytes.endIndex, length <= page.bytes.endIndex - start else {
            throw BBoltError("page \(page.pgid): element data (pos \(pos), \(length) bytes) runs past the page end",
                             offset: page.offset + (at - page.bytes.startIndex))
        }
        return page.bytes[start ..< start + length]
    }

    private func leaf(_ page: Page, previous: inout [UInt8]?, _ body: (Entry) throws -> Void) throws {
        try checkElementTable(page)
        for i in 0..<page.count {
            let at = page.bytes.startIndex + BBoltFormat.pageHeaderSize + BBoltFormat.elementSize * i
            let elementOffset = page.offset + (at - page.bytes.startIndex)
            let flags = page.bytes.bboltLoad(UInt32.self, at: at)
            let pos = Int(page.bytes.bboltLoad(UInt32.self, at: at + 4))
            let ksize = Int(page.bytes.bboltLoad(UInt32.self, at: at + 8))
            let vsize = Int(page.bytes.bboltLoad(UInt32.self, at: at + 12))
            let key = Array(try slice(page, element: at, pos: pos, length: ksize))
            let value = Array(try slice(page, element: at, pos: pos + ksize, length: vsize))
            if let p = previous, !p.lexicographicallyPrecedes(key) {
                throw BBoltError("page \(page.pgid): keys out of order", offset: elementOffset)
            }
            previous = key
            var nested: Bucket? = nil
            if flags & BBoltFormat.bucketLeafFlag != 0 {
                guard value.count >= BBoltFormat.bucketHeaderSize else {
                    throw BBoltError("page \(page.pgid): bucket header of \(value.count) bytes (16 needed)", offset: elementOffset)
                }
                let rootPage = value.bboltLoad(UInt64.self, at: 0)
                let valueOffset = page.offset + (at - page.bytes.startIndex) + pos + ksize
                if rootPage == 0 {
                    guard value.count >= BBoltFormat.bucketHeaderSize + BBoltFormat.pageHeaderSize else {
                        throw BBoltError("page \(page.pgid): inline bucket of \(value.count) bytes has no page", offset: elementOffset)
                    }
                    nested = .inline(Array(value[BBoltFormat.bucketHeaderSize...]), offset: valueOffset + BBoltFormat.bucketHeaderSize)
                } else {
                    guard rootPage >= 2, rootPage < pageCount else {
                        throw BBoltError("page \(page.pgid): bucket root page \(rootPage) out of range 2..<\(pageCount)", offset: valueOffset)
                    }
                    nested = .page(rootPage)
                }
            }
            try body(Entry(key: key, value: value, nested: nested))
        }
    }
}

/// The pages a walk has visited: share one across the walk of a whole database so that a page
/// reached twice (a cycle, or two parents) is an error.
public final class VisitedPages {
    var ids: Set<UInt64> = []
    public init() {}
}

/// A parsed meta page.
struct Meta {
    var pageSize: UInt32
    var rootPage: UInt64
    var freelist: UInt64
    var pageCount: UInt64
    var txid: UInt64

    /// Parses the meta page at file offset `at` from its first 80 bytes.
    static func parse(_ b: ArraySlice<UInt8>, at: Int) -> Result<Meta, BBoltError> {
        let s = b.startIndex
        guard b.count >= 80 else { return .failure(BBoltError("meta page truncated", offset: at)) }
        let flags = b.bboltLoad(UInt16.self, at: s + 8)
        guard flags == BBoltFormat.metaFlag else {
            return .failure(BBoltError("page has flags 0x\(String(flags, radix: 16)), not a meta page", offset: at + 8))
        }
        let m = s + 16
        guard b.bboltLoad(UInt32.self, at: m) == BBoltFormat.magic else {
            return .failure(BBoltError("bad magic (not a bbolt database)", offset: at + 16))
        }
        let version = b.bboltLoad(UInt32.self, at: m + 4)
        guard version == BBoltFormat.version else {
            return .failure(BBoltError("bbolt version \(version) (this reader knows \(BBoltFormat.version))", offset: at + 20))
        }
        let stored = b.bboltLoad(UInt64.self, at: m + BBoltFormat.metaChecksumOffset)
        let computed = BBoltFormat.fnv64a(b[m ..< m + BBoltFormat.metaChecksumOffset])
        guard stored == computed else {
            return .failure(BBoltError("meta checksum mismatch", offset: at + 16 + BBoltFormat.metaChecksumOffset))
        }
        let pageSize = b.bboltLoad(UInt32.self, at: m + 8)
        guard pageSize >= 512, pageSize <= 65536, pageSize & (pageSize - 1) == 0 else {
            return .failure(BBoltError("page size \(pageSize) is not a power of two in 512...65536", offset: at + 24))
        }
        return .success(Meta(pageSize: pageSize, rootPage: b.bboltLoad(UInt64.self, at: m + 16),
                             freelist: b.bboltLoad(UInt64.self, at: m + 32),
                             pageCount: b.bboltLoad(UInt64.self, at: m + 40),
                             txid: b.bboltLoad(UInt64.self, at: m + 48)))
    }
}
