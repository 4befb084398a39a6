/// A set of keys, in etcd's terms.
public struct KeySpan: Sendable, Hashable {
    public var start: [UInt8]
    /// Exclusive upper bound; nil with `isSingleKey == false` means "every key >= start".
    public var end: [UInt8]?
    public var isSingleKey: Bool

    public static func single(_ key: [UInt8]) -> KeySpan { KeySpan(start: key, end: nil, isSingleKey: true) }
    public static func range(_ start: [UInt8], _ end: [UInt8]?) -> KeySpan { KeySpan(start: start, end: end, isSingleKey: false) }

    /// etcd's encoding: empty `rangeEnd` = the single `key`; `rangeEnd == "\0"` = every key >=
    /// `key`; otherwise [key, rangeEnd) (empty when rangeEnd <= key).
    public static func etcd(key: [UInt8], rangeEnd: [UInt8]) -> KeySpan {
        if rangeEnd.isEmpty { return .single(key) }
        if rangeEnd == [0] { return .range(key, nil) }
        return .range(key, rangeEnd)
    }

    /// The exclusive upper bound for an index scan.
    var scanEnd: [UInt8]? {
        if isSingleKey { return start + [0] }
        return end
    }

    public func contains(_ key: [UInt8]) -> Bool {
        if isSingleKey { return key == start }
        if compareBytes(key, start) < 0 { return false }
        if let end { return compareBytes(key, end) < 0 }
        return true
    }
}

/// Options of a range read.
public struct RangeOptions: Sendable, Hashable {
    /// Revision to read at; <= 0 means the current revision.
    public var revision: Int64
    /// Maximum number of key-values returned; 0 means no limit. `count` is unaffected.
    public var limit: Int
    /// Return only the count.
    public var countOnly: Bool

    public init(revision: Int64 = 0, limit: Int = 0, countOnly: Bool = false) {
        self.revision = revision
        self.limit = limit
        self.countOnly = countOnly
    }
}

/// The answer to a range read.
public struct RangeResult: Sendable {
    /// Key-values in key order (at most `limit`; none with `countOnly`).
    public var kvs: [KeyValue]
    /// Number of keys in the span at the read revision, regardless of limit.
    public var count: Int
    /// The store's current revision when the read was served (etcd's header revision), which
    /// may be above the read revision for historical reads.
    public var revision: Int64
}

/// The revisions a range read returns, in key order: every key of `span` visible at the read
/// revision (etcd's future / compacted checks first). Their number is the range's `count`.
func visibleRevisions(_ index: KeyIndex, span: KeySpan, options: RangeOptions, currentRevision: Int64,
                      compactRevision: Int64) throws(MVCCError) -> [Revision] {
    var rev = options.revision
    if rev > currentRevision { throw .futureRevision }
    if rev <= 0 { rev = currentRevision }
    if rev < compactRevision { throw .compacted }
    var revisions: [Revision] = []
    if span.isSingleKey {
        if let e = index.get(span.start), let r = e.visibleRevision(at: rev) { revisions.append(r) }
    } else {
        if let end = span.end, compareBytes(end, span.start) <= 0 { return [] }
        index.forEach(from: span.start, to: span.end) { e in
            if let r = e.visibleRevision(at: rev) { revisions.append(r) }
            return true
        }
    }
    return revisions
}

/// The shared range algorithm over an index snapshot. `fetch` loads the record of a revision.
func rangeOver(_ index: KeyIndex, span: KeySpan, options: RangeOptions, currentRevision: Int64,
               compactRevision: Int64,
               fetch: (Revision) throws(MVCCError) -> KeyValue) throws(MVCCError) -> RangeResult {
    let revisions = try visibleRevisions(index, span: span, options: options, currentRevision: currentRevision,
                                         compactRevision: compactRevision)
    if options.countOnly || revisions.isEmpty {
        return RangeResult(kvs: [], count: revisions.count, revision: currentRevision)
    }
    let n = options.limit > 0 ? min(options.limit, revisions.count) : revisions.count
    var kvs: [KeyValue] = []
    kvs.reserveCapacity(n)
    for r in revisions[..<n] { kvs.append(try fetch(r)) }
    return RangeResult(kvs: kvs, count: revisions.count, revision: currentRevision)
}
