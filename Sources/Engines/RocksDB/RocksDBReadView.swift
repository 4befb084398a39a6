import CRocksDB
import EngineAPI

/// A read view: a rocksdb snapshot, released on deinit or when the engine closes. A live
/// snapshot keeps the versions it sees from being dropped by compaction (and their blob files
/// from being deleted) until it ends.
final class RocksDBReadView: ReadView, @unchecked Sendable {
    private let database: RocksDBDatabase
    private let snapshot: RocksDBSnapshot

    init(database: RocksDBDatabase) throws {
        self.database = database
        self.snapshot = try database.createSnapshot()
    }

    deinit { database.releaseSnapshot(snapshot) }

    func get(_ key: [UInt8]) throws -> [UInt8]? {
        let path = database.path
        return try database.withSnapshot(snapshot, operation: "get") { db, live in
            try RocksDBReads.get(db, live.readOptions, key, path: path)
        }
    }

    func scan(_ range: KeyRange, reverse: Bool, limit: Int?,
              _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        let path = database.path
        let settings = database.settings
        try database.withSnapshot(snapshot, operation: "scan") { db, live in
            try RocksDBReads.scan(db, settings: settings, snapshot: live.snapshot, range, reverse: reverse,
                                  limit: limit, path: path, visit)
        }
    }
}
