#if canImport(Glibc)
import Glibc
#endif

/// Writes a bbolt database as a stream of pages, in file order, from keys given in ascending
/// order: every B+tree is built bottom-up (leaves filled in key order, each level's page written
/// as soon as it is full), so memory stays at one page per tree level whatever the size.
///
/// The meta pages come first in the file but name the root page and the page count, known only
/// at the end. So a database is written twice with the same input: a dry run (`plan: nil`,
/// `sink: nil`: pages are counted, not built) returns the `Plan`; the real run is given it,
/// writes meta pages from it, and `finish` throws if the input turned out different. Page
/// layout depends only on the sizes of keys and values, so the dry run may be given sizes alone
/// (`put(keyCount:valueCount:)`) and skip building the bytes.
///
/// Layout: pages 0-1 meta, 2 an empty freelist, then every top-level bucket's pages (children
/// before parents), then the root bucket's pages. Top-level buckets hold plain keys only
/// (nested buckets are read by `BBoltReader` but not written). No page is free.
///
/// Usage: `beginBucket(name)` in ascending name order, `put` in ascending key order,
/// `endBucket()`, … then `finish()`.
public struct BBoltWriter {
    /// Receives each page (or page plus its overflow pages) in file order.
    public typealias Sink = ([UInt8]) throws -> Void

    /// What the meta pages record: the root bucket's page and the number of pages.
    public struct Plan: Equatable, Sendable {
        public var rootPage: UInt64
        public var pageCount: UInt64
    }

    public let pageSize: Int
    private let plan: Plan?
    private var emitter: PageEmitter
    private var bucket: TreeBuilder?
    private var bucketName: [UInt8]?
    private var rootEntries = TreeBuilder()
    private var lastBucketName: [UInt8]?

    /// Starts a database; writes the meta and freelist pages (from `plan`) through `sink` now.
    /// Without a sink nothing is built: the pass only plans.
    public init(pageSize: Int = BBoltFormat.defaultPageSize, plan: Plan?, sink: Sink?) throws {
        guard pageSize >= 1024, pageSize <= 65536, pageSize & (pageSize - 1) == 0 else {
            throw BBoltError("page size \(pageSize) is not a power of two in 1024...65536")
        }
        self.pageSize = pageSize
        self.plan = plan
        emitter = PageEmitter(pageSize: pageSize, sink: sink)
        let p = plan ?? Plan(rootPage: 0, pageCount: 0)
        try emitter.writeMeta(pgid: 0, txid: 1, plan: p)
        try emitter.writeMeta(pgid: 1, txid: 2, plan: p)
        try emitter.writeFreelist(pgid: 2)
    }

    public mutating func beginBucket(_ name: [UInt8]) throws {
        guard bucket == nil else { throw BBoltError("bucket \(Self.show(name)) begun inside another bucket") }
        guard !name.isEmpty, name.count <= BBoltFormat.maxKeySize else {
            throw BBoltError("bucket name of \(name.count) bytes (1...\(BBoltFormat.maxKeySize) allowed)")
        }
        if let last = lastBucketName, !last.lexicographicallyPrecedes(name) {
            throw BBoltError("bucket \(Self.show(name)) does not follow \(Self.show(last)) in ascending order")
        }
        lastBucketName = name
        bucketName = name
        bucket = TreeBuilder()
    }

    /// Whether this is the dry run (no sink: pages are counted, not built).
    public var isPlanning: Bool { emitter.sink == nil }

    /// Adds a key to the open bucket; keys must be non-empty and strictly ascending.
    public mutating func put(_ key: [UInt8], _ value: [UInt8]) throws {
        try key.withUnsafeBytes { k in try value.withUnsafeBytes { v in try put(k, v) } }
    }

    /// Adds a key to the open bucket (the bytes are copied); keys must be non-empty and
    /// strictly ascending.
    public mutating func put(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws {
        guard bucket != nil else { throw BBoltError("put outside a bucket") }
        try Self.checkSizes(key.count, value.count)
        if let last = bucket!.lastKey, !Self.precedes(last, key) {
            throw BBoltError("key \(Self.show(Array(key))) does not follow \(Self.show(last)) in bucket \(Self.show(bucketName ?? []))")
        }
        try bucket!.add(key: key, keyCount: key.count, value: value, valueCount: value.count, flags: 0, emitter: &emitter)
    }

    /// The dry run's `put`: a key of `keyCount` bytes with a value of `valueCount` bytes. Only
    /// allowed while planning; key order is not checked here (the writing pass checks it, and
    /// `finish` there catches any difference in sizes).
    public mutating func put(keyCount: Int, valueCount: Int) throws {
        guard isPlanning else { throw BBoltError("put by size in the writing pass") }
        guard bucket != nil else { throw BBoltError("put outside a bucket") }
        try Self.checkSizes(keyCount, valueCount)
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        try bucket!.add(key: none, keyCount: keyCount, value: none, valueCount: valueCount, flags: 0, emitter: &emitter)
    }

    private static func checkSizes(_ keyCount: Int, _ valueCount: Int) throws {
        guard keyCount > 0, keyCount <= BBoltFormat.maxKeySize else {
            throw BBoltError("key of \(keyCount) bytes (1...\(BBoltFormat.maxKeySize) allowed)")
        }
        guard valueCount >= 0, valueCount <= BBoltFormat.maxValueSize else { throw BBoltError("value of \(valueCount) bytes is too large") }
    }

    /// Byte-wise order of `a` before `b` (a proper prefix comes first).
    static func precedes(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Bool {
        a.withUnsafeBytes { a in
            let n = min(a.count, b.count)
            let c = n == 0 ? 0 : memcmp(a.baseAddress!, b.baseAddress!, n)
            return c < 0 || (c == 0 && a.count < b.count)
        }
    }

    public mutating func endBucket() throws {
        guard var tree = bucket, let name = bucketName else { throw BBoltError("endBucket without beginBucket") }
        let root = try tree.finish(emitter: &emitter)
        bucket = nil
        bucketName = nil
        var header: [UInt8] = []
        header.bboltAppend(root)
        header.bboltAppend(UInt64(0))   // sequence
        try name.withUnsafeBytes { k in
            try header.withUnsafeBytes { v in
                try rootEntries.add(key: k, keyCount: k.count, value: v, valueCount: v.count,
                                    flags: BBoltFormat.bucketLeafFlag, emitter: &emitter)
            }
        }
    }

    /// Writes the root bucket and returns the plan; throws when it differs from the one given.
    @discardableResult
    public mutating func finish() throws -> Plan {
        guard bucket == nil else { throw BBoltError("finish with bucket \(Self.show(bucketName ?? [])) open") }
        let root = try rootEntries.finish(emitter: &emitter)
        let actual = Plan(rootPage: root, pageCount: emitter.nextPage)
        if let plan, plan != actual {
            throw BBoltError("the data changed between the planning and the writing pass (planned \(plan), wrote \(actual))")
        }
        return actual
    }

    static func show(_ b: [UInt8]) -> String {
        if let s = String(validating: b, as: UTF8.self), s.allSatisfy({ $0.isASCII && !$0.isNewline }) { return "\"\(s)\"" }
        return "0x" + b.prefix(40).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

/// Assigns page ids in file order and serializes pages.
struct PageEmitter {
    let pageSize: Int
    let sink: BBoltWriter.Sink?
    var nextPage: UInt64 = 0
    private var page: [UInt8] = []

    init(pageSize: Int, sink: BBoltWriter.Sink?) {
        self.pageSize = pageSize
        self.sink = sink
    }

    mutating func writeMeta(pgid: UInt64, txid: UInt64, plan: BBoltWriter.Plan) throws {
        nextPage = pgid + 1
        guard let sink else { return }
        var p = [UInt8](repeating: 0, count: pageSize)
        p.bboltStore(pgid, at: 0)
        p.bboltStore(BBoltFormat.metaFlag, at: 8)
        var m: [UInt8] = []
        m.bboltAppend(BBoltFormat.magic)
        m.bboltAppend(BBoltFormat.version)
        m.bboltAppend(UInt32(pageSize))
        m.bboltAppend(UInt32(0))
        m.bboltAppend(plan.rootPage)
        m.bboltAppend(UInt64(0))
        m.bboltAppend(UInt64(2))   // freelist page
        m.bboltAppend(plan.pageCount)
        m.bboltAppend(txid)
        m.bboltAppend(BBoltFormat.fnv64a(m[...]))
        p.replaceSubrange(16 ..< 16 + m.count, with: m)
        try sink(p)
    }

    mutating func writeFreelist(pgid: UInt64) throws {
        nextPage = pgid + 1
        guard let sink else { return }
        var p = [UInt8](repeating: 0, count: pageSize)
        p.bboltStore(pgid, at: 0)
        p.bboltStore(BBoltFormat.freelistFlag, at: 8)
        try sink(p)
    }

    /// Writes a branch or leaf page from its elements; returns its id. While planning only the
    /// id is assigned.
    mutating func writeNode(_ node: NodeBuffer, isLeaf: Bool) throws -> UInt64 {
        let count = node.count
        let dataStart = BBoltFormat.pageHeaderSize + BBoltFormat.elementSize * count
        let total = dataStart + node.dataCount
        let pages = (total + pageSize - 1) / pageSize
        let pgid = nextPage
        nextPage = pgid + UInt64(pages)
        guard let sink else { return pgid }
        // One buffer reused for every page: the sink copies what it keeps.
        page.removeAll(keepingCapacity: true)
        page.append(contentsOf: repeatElement(0, count: pages * pageSize))
        page.bboltStore(pgid, at: 0)
        page.bboltStore(isLeaf ? BBoltFormat.leafFlag : BBoltFormat.branchFlag, at: 8)
        page.bboltStore(UInt16(count), at: 10)
        page.bboltStore(UInt32(pages - 1), at: 12)
        for i in 0..<count {
            let at = BBoltFormat.pageHeaderSize + BBoltFormat.elementSize * i
            let pos = UInt32(dataStart + node.dataOffsets[i] - at)
            if isLeaf {
                page.bboltStore(node.flags[i], at: at)
                page.bboltStore(pos, at: at + 4)
                page.bboltStore(node.keySizes[i], at: at + 8)
                page.bboltStore(node.valueSizes[i], at: at + 12)
            } else {
                page.bboltStore(pos, at: at)
                page.bboltStore(node.keySizes[i], at: at + 4)
                page.bboltStore(node.children[i], at: at + 8)
            }
        }
        page.replaceSubrange(dataStart ..< dataStart + node.data.count, with: node.data)
        try sink(page)
        return pgid
    }
}

/// The elements of one page being filled. While planning (`keep` false) only the sizes, the
/// first key's size and the child page ids are kept.
struct NodeBuffer {
    var data: [UInt8] = []
    var dataOffsets: [Int] = []
    var keySizes: [UInt32] = []
    var valueSizes: [UInt32] = []
    var flags: [UInt32] = []
    var children: [UInt64] = []
    /// The first key (its bytes when kept) and its size.
    var firstKey: [UInt8] = []
    var firstKeyCount = 0
    private(set) var count = 0
    /// Bytes of keys and values.
    private(set) var dataCount = 0

    var byteSize: Int { BBoltFormat.pageHeaderSize + BBoltFormat.elementSize * count + dataCount }

    mutating func append(key: UnsafeRawBufferPointer, keyCount: Int, value: UnsafeRawBufferPointer, valueCount: Int,
                         flags f: UInt32, child: UInt64, keep: Bool) {
        if count == 0 {
            firstKeyCount = keyCount
            if keep {
                firstKey.removeAll(keepingCapacity: true)
                firstKey.append(contentsOf: key)
            }
        }
        count += 1
        children.append(child)
        if keep {
            dataOffsets.append(dataCount)
            data.append(contentsOf: key)
            data.append(contentsOf: value)
            keySizes.append(UInt32(keyCount))
            valueSizes.append(UInt32(valueCount))
            flags.append(f)
        }
        dataCount += keyCount + valueCount
    }

    mutating func reset() {
        data.removeAll(keepingCapacity: true)
        dataOffsets.removeAll(keepingCapacity: true)
        keySizes.removeAll(keepingCapacity: true)
        valueSizes.removeAll(keepingCapacity: true)
        flags.removeAll(keepingCapacity: true)
        children.removeAll(keepingCapacity: true)
        firstKey.removeAll(keepingCapacity: true)
        firstKeyCount = 0
        count = 0
        dataCount = 0
    }
}

/// One B+tree built bottom-up: `levels[0]` is the leaf being filled, `levels[i]` the branch
/// page of level i being filled with (first key, page id) of the full pages below it.
struct TreeBuilder {
    private var levels: [NodeBuffer] = [NodeBuffer()]
    /// The last key added (kept only when bytes are given).
    private(set) var lastKey: [UInt8]?

    mutating func add(key: UnsafeRawBufferPointer, keyCount: Int, value: UnsafeRawBufferPointer, valueCount: Int,
                      flags: UInt32, emitter: inout PageEmitter) throws {
        if key.baseAddress != nil {
            if lastKey == nil { lastKey = [] }
            lastKey!.removeAll(keepingCapacity: true)
            lastKey!.append(contentsOf: key)
        }
        try add(level: 0, key: key, keyCount: keyCount, value: value, valueCount: valueCount, flags: flags, child: 0,
                emitter: &emitter)
    }

    private mutating func add(level: Int, key: UnsafeRawBufferPointer, keyCount: Int, value: UnsafeRawBufferPointer,
                              valueCount: Int, flags: UInt32, child: UInt64, emitter: inout PageEmitter) throws {
        let grown = levels[level].byteSize + BBoltFormat.elementSize + keyCount + valueCount
        if levels[level].count > 0 && (grown > emitter.pageSize || levels[level].count >= 0xFFFE) {
            try flush(level: level, emitter: &emitter)
        }
        levels[level].append(key: key, keyCount: keyCount, value: value, valueCount: valueCount, flags: flags,
                             child: child, keep: emitter.sink != nil)
    }

    /// Writes the page of `level` and adds it to the level above.
    private mutating func flush(level: Int, emitter: inout PageEmitter) throws {
        let pgid = try emitter.writeNode(levels[level], isLeaf: level == 0)
        let first = levels[level].firstKey
        let firstCount = levels[level].firstKeyCount
        levels[level].reset()
        if level + 1 == levels.count { levels.append(NodeBuffer()) }
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        try first.withUnsafeBytes { k in
            try add(level: level + 1, key: k, keyCount: firstCount, value: none, valueCount: 0, flags: 0, child: pgid,
                    emitter: &emitter)
        }
    }

    /// Writes what is pending, bottom up; returns the root page id.
    mutating func finish(emitter: inout PageEmitter) throws -> UInt64 {
        var level = 0
        while true {
            if level == levels.count - 1 {
                // The top level: a branch holding one child is that child.
                if level > 0 && levels[level].count == 1 { return levels[level].children[0] }
                return try emitter.writeNode(levels[level], isLeaf: level == 0)
            }
            if levels[level].count > 0 { try flush(level: level, emitter: &emitter) }
            level += 1
        }
    }
}
