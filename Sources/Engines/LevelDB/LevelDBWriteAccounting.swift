import EngineAPI

/// Estimates of what LevelDB writes to disk, since LevelDB does not count it as a whole.
///
/// - Log (WAL): computed from the log format for each batch: the WriteBatch record (12-byte
///   header; per op a tag, varint lengths, key, value) cut into fragments with 7-byte headers
///   at 32 KiB block boundaries, block tails padded (as log::Writer does).
/// - Tables (memtable flushes and compactions): the larger of the per-level "Write(MB)" column
///   of "leveldb.stats" (kept by LevelDB since open, 1 MB resolution) and the sizes of the table
///   files numbered above those present at open (observed whenever `stats()` runs).
/// - MANIFEST edits are not counted (a few hundred bytes per flush or compaction).
struct LevelDBWriteAccounting {
    private(set) var walBytes: UInt64 = 0
    private(set) var userBytes: UInt64 = 0
    /// Highest table file number present at open.
    let baselineFileNumber: UInt64
    /// Table files created since open: number -> largest size seen.
    private var newTables: [UInt64: UInt64] = [:]

    init(baselineFileNumber: UInt64) { self.baselineFileNumber = baselineFileNumber }

    /// Position inside the current 32 KiB log block (LevelDB starts a new log file at each
    /// open and memtable switch; switches are not visible here, so after one the block
    /// padding estimate may be off by a few bytes per block).
    private var logBlockOffset = 0

    /// Accounts one batch; returns the log bytes it adds.
    @discardableResult
    mutating func recordBatch(_ batch: WriteBatch) -> UInt64 {
        let bytes = appendLogRecord(of: Self.recordLength(of: batch))
        walBytes += bytes
        userBytes += UInt64(batch.byteCount)
        return bytes
    }

    /// LevelDB's log::Writer::AddRecord: fragments with 7-byte headers, a block tail shorter
    /// than a header padded with zeros.
    private mutating func appendLogRecord(of length: Int) -> UInt64 {
        let blockSize = 32768, headerSize = 7
        var left = length
        var written = 0
        repeat {
            let leftover = blockSize - logBlockOffset
            if leftover < headerSize {
                written += leftover
                logBlockOffset = 0
            }
            let fragment = min(left, blockSize - logBlockOffset - headerSize)
            written += headerSize + fragment
            logBlockOffset += headerSize + fragment
            left -= fragment
        } while left > 0
        return UInt64(written)
    }

    mutating func observeTables(_ files: [FileEntry]) {
        for file in files {
            guard let number = Self.tableNumber(file.name), number > baselineFileNumber else { continue }
            newTables[number] = max(newTables[number] ?? 0, file.size)
        }
    }

    var observedTableBytes: UInt64 { newTables.values.reduce(0, +) }

    static func tableNumber(_ name: String) -> UInt64? {
        for suffix in [".ldb", ".sst"] where name.hasSuffix(suffix) {
            return UInt64(name.dropLast(suffix.count))
        }
        return nil
    }

    /// Length of the WriteBatch record LevelDB logs for `batch`.
    static func recordLength(of batch: WriteBatch) -> Int {
        var record = 12
        for op in batch.operations {
            switch op {
            case .put(let key, let value):
                record += 1 + varintLength(key.count) + key.count + varintLength(value.count) + value.count
            case .delete(let key):
                record += 1 + varintLength(key.count) + key.count
            }
        }
        return record
    }

    static func varintLength(_ n: Int) -> Int {
        var n = UInt64(n)
        var length = 1
        while n >= 128 {
            n >>= 7
            length += 1
        }
        return length
    }

    /// Parses the compaction table of "leveldb.stats":
    ///   Level  Files Size(MB) Time(sec) Read(MB) Write(MB)
    ///   --------------------------------------------------
    ///     0        2        1         0        0         1
    /// Returns per-level rows of (files, sizeMB, seconds, readMB, writeMB).
    static func parseStats(_ text: String) -> [(level: Int, files: Double, sizeMB: Double, seconds: Double, readMB: Double, writeMB: Double)] {
        var rows: [(Int, Double, Double, Double, Double, Double)] = []
        var inTable = false
        for line in text.split(separator: "\n") {
            if line.hasPrefix("---") {
                inTable = true
                continue
            }
            guard inTable else { continue }
            let fields = line.split(separator: " ").compactMap { Double($0) }
            if fields.count == 6 {
                rows.append((Int(fields[0]), fields[1], fields[2], fields[3], fields[4], fields[5]))
            }
        }
        return rows.map { (level: $0.0, files: $0.1, sizeMB: $0.2, seconds: $0.3, readMB: $0.4, writeMB: $0.5) }
    }
}
