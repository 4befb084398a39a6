/// Writes a bbolt database as a stream of pages, in file order, from keys given in ascending
/// order: every B+tree is built bottom-up (leaves filled in key order, each level's page written
/// as soon as it is full), so memory stays at one page per tree level whatever the size.
///
/// The meta pages come first in the file but name the root page and the page count, known only
/// at the end. So a database is written twice with the same input: a dry run (`plan: nil`,
/// `sink: nil`: pages are counted, not built) returns the `Plan`; the real run is given it,
/// writes meta pages from it, and `finish` throws if the input turned out different.
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

    /// Adds a key to the open bucket; keys must be non-empty and strictly ascending.
    public mutating func put(_ key: [UInt8], _ value: [UInt8]) throws {
        guard bucket != nil else { throw BBoltError("put outside a bucket") }
        guard !key.isEmpty, key.count <= BBoltFormat.maxKeySize else {
            throw BBoltError("key of \(key.count) bytes (1...\(BBoltFormat.maxKeySize) allowed)")
        }
        guard value.count <= BBoltFormat.maxValueSize else { throw BBoltError("value of \(value.count) bytes is too large") }
        if let last = bucket!.lastKey, !last.lexicographicallyPrecedes(key) {
            throw BBoltError("key \(Self.show(key)) does not follow \(Self.show(last)) in bucket \(Self.show(bucketName ?? []))")
        }
        try bucket!.add(key: key, value: value, flags: 0, emitter: &emitter)
    }

    public mutating func endBucket() throws {
        guard var tree = bucket, let name = bucketName else { throw BBoltError("endBucket without beginBucket") }
        let root = try tree.finish(emitter: &emitter)
        bucket = nil
        bucketName = nil
        var header: [UInt8] = []
        header.bboltAppend(root)
        header.bboltAppend(UInt64(0))   // sequence
        try rootEntries.add(key: name, value: header, flags: BBoltFormat.bucketLeafFlag, emitter: &emitter)
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

    /// Writes a branch or leaf page from its elements; returns its id.
    mutating func writeNode(_ node: NodeBuffer, isLeaf: Bool) throws -> UInt64 {
        let count = node.count
        let dataStart = BBoltFormat.pageHeaderSize + BBoltFormat.elementSize * count
        let total = dataStart + node.data.count
        let pages = (total + pageSize - 1) / pageSize
        let pgid = nextPage
        nextPage = pgid + UInt64(pages)
        guard let sink else { return pgid }
        var p = [UInt8](repeating: 0, count: pages * pageSize)
        p.bboltStore(pgid, at: 0)
        p.bboltStore(isLeaf ? BBoltFormat.leafFlag : BBoltFormat.branchFlag, at: 8)
        p.bboltStore(UInt16(count), at: 10)
        p.bboltStore(UInt32(pages - 1), at: 12)
        for i in 0..<count {
            let at = BBoltFormat.pageHeaderSize + BBoltFormat.elementSize * i
            let pos = UInt32(dataStart + node.dataOffsets[i] - at)
            if isLeaf {
                p.bboltStore(node.flags[i], at: at)
                p.bboltStore(pos, at: at + 4)
                p.bboltStore(node.keySizes[i], at: at + 8)
                p.bboltStore(node.valueSizes[i], at: at + 12)
            } else {
                p.bboltStore(pos, at: at)
                p.bboltStore(node.keySizes[i], at: at + 4)
                p.bboltStore(node.children[i], at: at + 8)
            }
        }
        p.replaceSubrange(dataStart ..< dataStart + node.data.count, with: node.data)
        try sink(p)
        return pgid
    }
}

/// The elements of one page being filled.
struct NodeBuffer {
    var data: [UInt8] = []
    var dataOffsets: [Int] = []
    var keySizes: [UInt32] = []
    var valueSizes: [UInt32] = []
    var flags: [UInt32] = []
    var children: [UInt64] = []
    var firstKey: [UInt8] = []

    var count: Int { dataOffsets.count }
    var byteSize: Int { BBoltFormat.pageHeaderSize + BBoltFormat.elementSize * count + data.count }

    mutating func append(key: [UInt8], value: [UInt8], flags f: UInt32, child: UInt64) {
        if count == 0 { firstKey = key }
        dataOffsets.append(data.count)
        data.append(contentsOf: key)
        data.append(contentsOf: value)
        keySizes.append(UInt32(key.count))
        valueSizes.append(UInt32(value.count))
        flags.append(f)
        children.append(child)
    }

    mutating func reset() {
        data.removeAll(keepingCapacity: true)
        dataOffsets.removeAll(keepingCapacity: true)
        keySizes.removeAll(keepingCapacity: true)
        valueSizes.removeAll(keepingCapacity: true)
        flags.removeAll(keepingCapacity: true)
        children.removeAll(keepingCapacity: true)
        firstKey = []
    }
}

/// One B+tree built bottom-up: `levels[0]` is the leaf being filled, `levels[i]` the branch
/// page of level i being filled with (first key, page id) of the full pages below it.
struct TreeBuilder {
    private var levels: [NodeBuffer] = [NodeBuffer()]
    private(set) var lastKey: [UInt8]?

    mutating func add(key: [UInt8], value: [UInt8], flags: UInt32, emitter: inout PageEmitter) throws {
        lastKey = key
        try add(level: 0, key: key, value: value, flags: flags, child: 0, emitter: &emitter)
    }

    private mutating func add(level: Int, key: [UInt8], value: [UInt8], flags: UInt32, child: UInt64,
                              emitter: inout PageEmitter) throws {
        let grown = levels[level].byteSize + BBoltFormat.elementSize + key.count + value.count
        if levels[level].count > 0 && (grown > emitter.pageSize || levels[level].count >= 0xFFFE) {
            try flush(level: level, emitter: &emitter)
        }
        levels[level].append(key: key, value: value, flags: flags, child: child)
    }

    /// Writes the page of `level` and adds it to the level above.
    private mutating func flush(level: Int, emitter: inout PageEmitter) throws {
        let pgid = try emitter.writeNode(levels[level], isLeaf: level == 0)
        let first = levels[level].firstKey
        levels[level].reset()
        if level + 1 == levels.count { levels.append(NodeBuffer()) }
        try add(level: level + 1, key: first, value: [], flags: 0, child: pgid, emitter: &emitter)
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
