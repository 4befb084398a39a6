import EngineAPI

/// RocksDB's own counters turned into `EngineStats`: statistics tickers (counted since open,
/// since the statistics object is created with the options) and DB properties.
enum RocksDBStatistics {
    /// The tickers of a statistics dump, whose lines read "rocksdb.wal.bytes COUNT : 1234"
    /// (histogram lines, "NAME P50 : … COUNT : … SUM : …", are skipped).
    static func tickers(_ text: String) -> [String: UInt64] {
        var out: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 4, fields[1] == "COUNT", fields[2] == ":", let n = UInt64(fields[3]) else { continue }
            out[String(fields[0])] = n
        }
        return out
    }

    /// Ticker names (RocksDB 7.8, monitoring/statistics.cc) and the detail each becomes.
    static let tickerDetails: [(ticker: String, detail: String)] = [
        ("rocksdb.wal.bytes", "wal.bytes"),
        ("rocksdb.wal.synced", "wal.syncs"),
        ("rocksdb.write.self", "writes.group.leader"),
        ("rocksdb.write.other", "writes.group.follower"),
        ("rocksdb.flush.write.bytes", "flush.bytes"),
        ("rocksdb.compact.write.bytes", "compaction.bytes"),
        ("rocksdb.compact.read.bytes", "compaction.read.bytes"),
        ("rocksdb.blobdb.blob.file.bytes.written", "blob.bytes.written"),
        ("rocksdb.blobdb.gc.num.keys.relocated", "blob.gc.keys.relocated"),
        ("rocksdb.block.cache.hit", "block.cache.hits"),
        ("rocksdb.block.cache.miss", "block.cache.misses"),
        ("rocksdb.bloom.filter.useful", "bloom.useful"),
    ]

    /// DB properties (numeric) and the detail each becomes.
    static let propertyDetails: [(property: String, detail: String)] = [
        ("rocksdb.cur-size-all-mem-tables", "memtable.bytes"),
        ("rocksdb.block-cache-usage", "block.cache.bytes"),
        ("rocksdb.estimate-table-readers-mem", "table.readers.bytes"),
        ("rocksdb.live-sst-files-size", "sst.bytes"),
        ("rocksdb.num-blob-files", "blob.files"),
        ("rocksdb.live-blob-file-size", "blob.bytes"),
        ("rocksdb.live-blob-file-garbage-size", "blob.garbage.bytes"),
        ("rocksdb.estimate-num-keys", "keys.estimate"),
        ("rocksdb.estimate-pending-compaction-bytes", "compaction.pending.bytes"),
        ("rocksdb.num-running-compactions", "compactions.running"),
        ("rocksdb.num-snapshots", "snapshots"),
        ("rocksdb.background-errors", "background.errors"),
    ]

    /// Bytes RocksDB wrote to its files since open: WAL, flushes and compactions (the
    /// flush and compaction counters are the I/O of those jobs, blob files included), or the
    /// blob bytes alone when those are larger (counted in a different place: the larger is
    /// the better estimate). MANIFEST and OPTIONS writes are not counted.
    static func bytesWritten(_ tickers: [String: UInt64]) -> UInt64 {
        let wal = tickers["rocksdb.wal.bytes"] ?? 0
        let tables = (tickers["rocksdb.flush.write.bytes"] ?? 0) &+ (tickers["rocksdb.compact.write.bytes"] ?? 0)
        return wal &+ max(tables, tickers["rocksdb.blobdb.blob.file.bytes.written"] ?? 0)
    }
}
