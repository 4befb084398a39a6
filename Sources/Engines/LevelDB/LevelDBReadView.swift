import CLevelDB
import EngineAPI

/// A read view: a leveldb snapshot, released on deinit or when the engine closes.
final class LevelDBReadView: ReadView, @unchecked Sendable {
    private let database: LevelDBDatabase
    private let snapshot: LevelDBSnapshot

    init(database: LevelDBDatabase) throws {
        self.database = database
        self.snapshot = try database.createSnapshot()
    }

    deinit { database.releaseSnapshot(snapshot) }

    func get(_ key: [UInt8]) throws -> [UInt8]? {
        let path = database.path
        do {
            return try database.withSnapshot(snapshot, operation: "get") { db, readOptions in
                try LevelDBReads.get(db, readOptions, key, path: path)
            }
        } catch let error as EngineError {
            throw database.locateCorruption(error, key: key)
        }
    }

    func scan(_ range: KeyRange, reverse: Bool, limit: Int?,
              _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        let path = database.path
        try database.withSnapshot(snapshot, operation: "scan") { db, readOptions in
            try LevelDBReads.scan(db, readOptions, range, reverse: reverse, limit: limit, path: path, visit)
        }
    }
}

/// Point reads and iterator scans over a leveldb_t with given read options.
enum LevelDBReads {
    static func get(_ db: OpaquePointer, _ readOptions: OpaquePointer, _ key: [UInt8], path: String) throws -> [UInt8]? {
        var length = 0
        var err: UnsafeMutablePointer<CChar>?
        let value = withCBytes(key) { k, n in leveldb_get(db, readOptions, k, n, &length, &err) }
        if let error = LevelDBErrors.take(err, path: path, operation: "get") {
            if let value { leveldb_free(value) }
            throw error
        }
        guard let value else { return nil }
        defer { leveldb_free(value) }
        return Array(UnsafeRawBufferPointer(start: value, count: length))
    }

    static func scan(_ db: OpaquePointer, _ readOptions: OpaquePointer, _ range: KeyRange, reverse: Bool, limit: Int?,
                     path: String, _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        if let limit, limit <= 0 { return }
        if let end = range.end, !range.start.lexicographicallyPrecedes(end) { return }
        guard let iterator = leveldb_create_iterator(db, readOptions) else {
            throw LevelDBErrors.error("IO error: leveldb_create_iterator returned nothing", path: path, operation: "scan")
        }
        defer { leveldb_iter_destroy(iterator) }
        func key() -> UnsafeRawBufferPointer {
            var n = 0
            let p = leveldb_iter_key(iterator, &n)
            return UnsafeRawBufferPointer(start: p, count: n)
        }
        func value() -> UnsafeRawBufferPointer {
            var n = 0
            let p = leveldb_iter_value(iterator, &n)
            return UnsafeRawBufferPointer(start: p, count: n)
        }
        var visited = 0
        if !reverse {
            if range.start.isEmpty {
                leveldb_iter_seek_to_first(iterator)
            } else {
                withCBytes(range.start) { k, n in leveldb_iter_seek(iterator, k, n) }
            }
            while leveldb_iter_valid(iterator) != 0 {
                let k = key()
                if let end = range.end, compareBytes(k, end) >= 0 { break }
                guard try visit(k, value()) else { break }
                visited += 1
                if let limit, visited >= limit { break }
                leveldb_iter_next(iterator)
            }
        } else {
            if let end = range.end {
                withCBytes(end) { k, n in leveldb_iter_seek(iterator, k, n) }
                if leveldb_iter_valid(iterator) != 0 {
                    leveldb_iter_prev(iterator)
                } else {
                    var err: UnsafeMutablePointer<CChar>?
                    leveldb_iter_get_error(iterator, &err)  // invalid because of an error, not the end?
                    if let error = LevelDBErrors.take(err, path: path, operation: "scan") { throw error }
                    leveldb_iter_seek_to_last(iterator)
                }
            } else {
                leveldb_iter_seek_to_last(iterator)
            }
            while leveldb_iter_valid(iterator) != 0 {
                let k = key()
                if compareBytes(k, range.start) < 0 { break }
                guard try visit(k, value()) else { break }
                visited += 1
                if let limit, visited >= limit { break }
                leveldb_iter_prev(iterator)
            }
        }
        var err: UnsafeMutablePointer<CChar>?
        leveldb_iter_get_error(iterator, &err)
        if let error = LevelDBErrors.take(err, path: path, operation: "scan") { throw error }
    }
}
