import EngineAPI

/// A read view: a reader connection holding one read transaction (BEGIN, then a read that fixes
/// its WAL snapshot) for the view's life. WAL readers do not block the writer, nor it them; a
/// live view keeps checkpoints from overwriting the pages it may still read, so the WAL grows
/// while views last. Released (rolled back, connection back to the pool) on deinit; after the
/// engine closes, every call throws `.closed`.
final class SQLiteReadView: ReadView, @unchecked Sendable {
    private let store: SQLiteStore
    private let connection: SQLiteConnection

    init(store: SQLiteStore) throws {
        self.store = store
        let connection = try store.readers.checkOut()
        do {
            try connection.run(.begin, operation: "readView")
            try connection.with(.startRead, operation: "readView") { _ = try $0.step(operation: "readView") }
        } catch {
            if connection.inTransaction { try? connection.run(.rollback, operation: "readView") }
            store.readers.checkIn(connection)
            throw error
        }
        self.connection = connection
        store.countView()
    }

    deinit { store.release(viewConnection: connection) }

    func get(_ key: [UInt8]) throws -> [UInt8]? {
        try store.withOpen("get") { try SQLiteReads.get(connection, key) }
    }

    func scan(_ range: KeyRange, reverse: Bool, limit: Int?,
              _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        try store.withOpen("scan") { try SQLiteReads.scan(connection, range, reverse: reverse, limit: limit, visit) }
    }
}
