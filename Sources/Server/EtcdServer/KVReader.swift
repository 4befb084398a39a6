import MVCC

/// What the request executors read through: the committed read view (reads served on the
/// caller's thread) or the store writer (reads inside the applier, seeing applied changes).
protocol KVReader {
    /// The revision this reader answers at (etcd's `rv.Rev()`).
    var readRevision: Int64 { get }
    var compactRevision: Int64 { get }
    func range(_ span: KeySpan, _ options: RangeOptions) throws(MVCCError) -> RangeResult
    func latestMetadata(_ key: [UInt8]) -> (createRevision: Int64, modRevision: Int64, version: Int64, lease: Int64)?
}

extension ReadTxn: KVReader {
    var readRevision: Int64 { revision }
}

extension StoreWriter: KVReader {
    var readRevision: Int64 { txnReadRevision }
    var compactRevision: Int64 { currentCompactRevision }
}
