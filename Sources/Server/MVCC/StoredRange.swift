import EngineAPI

/// One version of a key as the engine stores it: its revision record's bytes, header checked,
/// nothing decoded or copied out. For answers that are encoded straight from the record
/// (a large range's response) instead of through `KeyValue`.
public struct StoredKeyValue: Sendable {
    /// The whole record (see `RevisionRecord`): header, key, value.
    let record: [UInt8]
    /// Key length from the header; `headerSize + keyLength <= record.count` (checked).
    let keyLength: Int
    /// Main revision of the last creation of the key (0 for a tombstone).
    public let createRevision: Int64
    /// The record's own revision.
    public let modRevision: Int64
    public let version: Int64
    public let lease: Int64

    init(record: [UInt8], revision: Revision) throws(MVCCError) {
        let parsed: Result<RevisionRecord.Header, MVCCError> = record.withUnsafeBytes { b in
            Result { () throws(MVCCError) in try RevisionRecord.parseHeader(b, revision: revision) }
        }
        let header = try parsed.get()
        self.record = record
        keyLength = header.keyLength
        createRevision = header.createRevision
        modRevision = revision.main
        version = header.version
        lease = header.lease
    }

    /// Bytes of the key.
    public var keyCount: Int { keyLength }
    /// Bytes of the value (0 for a tombstone).
    public var valueCount: Int { record.count - RevisionRecord.headerSize - keyLength }

    /// Calls `body` with the key and the value, borrowed (valid only during the call).
    public func withKeyAndValue<R>(_ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try record.withUnsafeBytes { b in
            let keyEnd = RevisionRecord.headerSize + keyLength
            return try body(UnsafeRawBufferPointer(rebasing: b[RevisionRecord.headerSize ..< keyEnd]),
                            UnsafeRawBufferPointer(rebasing: b[keyEnd...]))
        }
    }
}

/// The answer to `ReadTxn.rangeStored`: `RangeResult` with undecoded key-values.
public struct StoredRange: Sendable {
    /// Key-values in key order (at most `limit`; none with `countOnly`).
    public var kvs: [StoredKeyValue]
    /// Number of keys in the span at the read revision, regardless of limit.
    public var count: Int
    /// The store's current revision when the read was served.
    public var revision: Int64
}

/// Reads the records of one range. A range of more than one key reads them all through one
/// engine read view (one read transaction, not one per record: with 10,000 keys the per-get
/// transaction set-up was about a tenth of the list's CPU on LMDB).
struct RecordReader {
    let store: MVCCStore
    let view: (any ReadView)?

    init(store: MVCCStore, records: Int) {
        self.store = store
        // A view that cannot be had (engine closing) leaves the reads to `engine.get`, which
        // reports the engine's error per record as before.
        view = records > 1 ? (try? store.engine.readView()) : nil
    }

    /// The record bytes of `rev`. A missing record means the revision was compacted since the
    /// reader's index snapshot was taken (else the store is damaged).
    func bytes(_ rev: Revision) throws(MVCCError) -> [UInt8] {
        let found: [UInt8]?
        do {
            let key = StorageLayout.revisionKey(rev)
            found = try view?.get(key) ?? store.engine.get(key)
        } catch {
            throw .engine("\(error)")
        }
        guard let found else {
            if rev.main < store.compactRevision { throw .compacted }
            throw .corruption("revision record \(rev) is in the index but missing from the engine")
        }
        return found
    }

    /// The records of `revisions` (any order) found by one ordered scan of the revision records
    /// from the lowest to the highest of them, instead of a point read each: a list of keys
    /// written together (a bulk load, a namespace created at once) is one stretch of the
    /// revision log, and a scan step costs far less than a lookup on every engine (an LSM get
    /// searches each level). The scan gives up after visiting 4 records per wanted one plus
    /// 1,000, so scattered revisions cost at most that much more; entries it did not reach
    /// are nil (read them with `bytes`, which also reports compacted or missing records).
    func scanRecords(of revisions: ArraySlice<Revision>) -> [[UInt8]?] {
        var found = [[UInt8]?](repeating: nil, count: revisions.count)
        guard revisions.count >= 64, let view else { return found }
        let base = revisions.startIndex
        let order = revisions.indices.sorted { revisions[$0] < revisions[$1] }
        guard let first = order.first, let last = order.last else { return found }
        let range = KeyRange(start: StorageLayout.revisionKey(revisions[first]),
                             end: StorageLayout.revisionKey(revisions[last]) + [0])
        let budget = 4 * revisions.count + 1_000
        var visited = 0
        var next = 0
        // A failed scan leaves the rest to point reads.
        try? view.scan(range, reverse: false, limit: nil) { k, v in
            visited += 1
            guard let rev = StorageLayout.parseRevisionKey(k) else { return visited < budget }
            while next < order.count && revisions[order[next]] < rev { next += 1 }
            while next < order.count && revisions[order[next]] == rev {
                found[order[next] - base] = Array(v)
                next += 1
            }
            return next < order.count && visited < budget
        }
        return found
    }

    func keyValue(_ rev: Revision) throws(MVCCError) -> KeyValue {
        try RevisionRecord.decode(try bytes(rev), revision: rev).0
    }
}

extension ReadTxn {
    /// `range` without decoding: the records of the key-values, for encoders that write the
    /// key and value bytes straight into a response (one copy instead of four).
    public func rangeStored(_ span: KeySpan, _ options: RangeOptions = RangeOptions()) throws(MVCCError) -> StoredRange {
        let revisions = try visibleRevisions(state.index, span: span, options: options,
                                             currentRevision: state.revision, compactRevision: state.compactRevision)
        if options.countOnly || revisions.isEmpty {
            return StoredRange(kvs: [], count: revisions.count, revision: state.revision)
        }
        let n = options.limit > 0 ? min(options.limit, revisions.count) : revisions.count
        let reader = RecordReader(store: store, records: n)
        let scanned = reader.scanRecords(of: revisions[..<n])
        var kvs: [StoredKeyValue] = []
        kvs.reserveCapacity(n)
        for (i, r) in revisions[..<n].enumerated() {
            let record: [UInt8]
            if let hit = scanned[i] { record = hit } else { record = try reader.bytes(r) }
            kvs.append(try StoredKeyValue(record: record, revision: r))
        }
        return StoredRange(kvs: kvs, count: revisions.count, revision: state.revision)
    }
}
