import CRocksDB
import EngineAPI

/// Point reads and bounded iterator scans over a rocksdb_t.
///
/// Scans give RocksDB the range as iterator bounds (`iterate_lower_bound` /
/// `iterate_upper_bound`), so it stops at the range's end inside the library instead of
/// stepping over deleted entries beyond it, and reverse scans start with `SeekToLast` under
/// the upper bound. The keys are still compared here, so a library bug cannot widen a range.
enum RocksDBReads {
    /// The value of `key` through `readOptions`, or nil. A value in a blob file is read from
    /// it, checked against its CRC when checksums are verified.
    static func get(_ db: OpaquePointer, _ readOptions: OpaquePointer, _ key: [UInt8], path: String) throws -> [UInt8]? {
        var err: UnsafeMutablePointer<CChar>?
        let pinned = withCBytes(key) { k, n in rocksdb_get_pinned(db, readOptions, k, n, &err) }
        if let error = RocksDBErrors.take(err, path: path, operation: "get") {
            if let pinned { rocksdb_pinnableslice_destroy(pinned) }
            throw error
        }
        guard let pinned else { return nil }
        defer { rocksdb_pinnableslice_destroy(pinned) }
        var length = 0
        guard let value = rocksdb_pinnableslice_value(pinned, &length) else { return [] }
        return Array(UnsafeRawBufferPointer(start: value, count: length))
    }

    /// Visits the entries of `range` (see `ReadView.scan`) as of `snapshot` (nil: latest).
    static func scan(_ db: OpaquePointer, settings: RocksDBSettings, snapshot: OpaquePointer?, _ range: KeyRange,
                     reverse: Bool, limit: Int?, path: String,
                     _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        if let limit, limit <= 0 { return }
        if let end = range.end, !range.start.lexicographicallyPrecedes(end) { return }
        let readOptions = try settings.makeReadOptions(snapshot: snapshot, path: path, operation: "scan")
        defer { rocksdb_readoptions_destroy(readOptions) }
        // The bounds point into `range`'s arrays: they stay alive (and unmoved) for the whole
        // iteration, inside these closures.
        try withCBytes(range.start) { start, startLength in
            try withOptionalCBytes(range.end) { end, endLength in
                if startLength > 0 { rocksdb_readoptions_set_iterate_lower_bound(readOptions, start, startLength) }
                if let end { rocksdb_readoptions_set_iterate_upper_bound(readOptions, end, endLength) }
                guard let iterator = rocksdb_create_iterator(db, readOptions) else {
                    throw RocksDBErrors.allocationFailed("rocksdb_create_iterator", path: path, operation: "scan")
                }
                defer { rocksdb_iter_destroy(iterator) }
                try iterate(iterator, range, reverse: reverse, limit: limit, visit)
                var err: UnsafeMutablePointer<CChar>?
                rocksdb_iter_get_error(iterator, &err)
                if let error = RocksDBErrors.take(err, path: path, operation: "scan") { throw error }
            }
        }
    }

    private static func iterate(_ iterator: OpaquePointer, _ range: KeyRange, reverse: Bool, limit: Int?,
                                _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        func key() -> UnsafeRawBufferPointer {
            var n = 0
            let p = rocksdb_iter_key(iterator, &n)
            return UnsafeRawBufferPointer(start: p, count: p == nil ? 0 : n)
        }
        func value() -> UnsafeRawBufferPointer {
            var n = 0
            let p = rocksdb_iter_value(iterator, &n)
            return UnsafeRawBufferPointer(start: p, count: p == nil ? 0 : n)
        }
        var visited = 0
        if reverse { rocksdb_iter_seek_to_last(iterator) } else { rocksdb_iter_seek_to_first(iterator) }
        while rocksdb_iter_valid(iterator) != 0 {
            let k = key()
            if reverse {
                if compareBytes(k, range.start) < 0 { break }
                if let end = range.end, compareBytes(k, end) >= 0 {
                    rocksdb_iter_prev(iterator)
                    continue
                }
            } else {
                if let end = range.end, compareBytes(k, end) >= 0 { break }
                if compareBytes(k, range.start) < 0 {
                    rocksdb_iter_next(iterator)
                    continue
                }
            }
            guard try visit(k, value()) else { break }
            visited += 1
            if let limit, visited >= limit { break }
            if reverse { rocksdb_iter_prev(iterator) } else { rocksdb_iter_next(iterator) }
        }
    }
}

/// `withCBytes` for an optional array: nil stays nil.
@inline(__always)
func withOptionalCBytes<T>(_ bytes: [UInt8]?, _ body: (UnsafePointer<CChar>?, Int) throws -> T) rethrows -> T {
    guard let bytes else { return try body(nil, 0) }
    return try withCBytes(bytes) { p, n in try body(p, n) }
}
