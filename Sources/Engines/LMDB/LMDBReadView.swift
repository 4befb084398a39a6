import CLMDB
import EngineAPI

/// A read view: one LMDB read transaction (MDB_NOTLS, so it may move between threads), ended on
/// deinit or when the engine closes, plus the writes that were pending (logged, not yet in
/// LMDB) when it began, which take precedence. Readers never block LMDB's writer.
final class LMDBReadView: ReadView, @unchecked Sendable {
    private let environment: LMDBEnvironment
    private let handle: LMDBReadTransaction
    private let pending: PendingLayers

    init(environment: LMDBEnvironment, pending: PendingLayers) throws {
        self.environment = environment
        self.handle = try environment.beginView()
        self.pending = pending
    }

    deinit { environment.endView(handle) }

    func get(_ key: [UInt8]) throws -> [UInt8]? {
        let storable = !key.isEmpty && key.count <= environment.maxKeySize
        let path = environment.path
        return try environment.withView(handle, operation: "get") { txn, dbi in
            if let hit = pending.lookup(key) { return hit }
            guard storable else { return nil }
            return try LMDBEnvironment.get(key, txn: txn, dbi: dbi, path: path, operation: "get")
        }
    }

    func scan(_ range: KeyRange, reverse: Bool, limit: Int?,
              _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        let maxKeySize = environment.maxKeySize
        let path = environment.path
        if pending.isEmpty {
            try environment.withView(handle, operation: "scan") { txn, dbi in
                try LMDBCursorScan(txn: txn, dbi: dbi, maxKeySize: maxKeySize, path: path)
                    .run(range, reverse: reverse, limit: limit, visit)
            }
            return
        }
        if let end = range.end, !range.start.lexicographicallyPrecedes(end) { return }
        try mergedScan(pending: pending.entries(in: range, reverse: reverse), reverse: reverse, limit: limit,
                       scanStore: { storeVisit in
            try environment.withView(handle, operation: "scan") { txn, dbi in
                try LMDBCursorScan(txn: txn, dbi: dbi, maxKeySize: maxKeySize, path: path)
                    .run(range, reverse: reverse, limit: nil, storeVisit)
            }
        }, visit)
    }
}

/// An ordered walk over [start, end) with an LMDB cursor, forward or backward.
struct LMDBCursorScan {
    let txn: OpaquePointer
    let dbi: MDB_dbi
    let maxKeySize: Int
    let path: String

    func run(_ range: KeyRange, reverse: Bool, limit: Int?,
             _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        if let limit, limit <= 0 { return }
        if let end = range.end, !range.start.lexicographicallyPrecedes(end) { return }  // empty range
        var cursorPointer: OpaquePointer?
        var rc = mdb_cursor_open(txn, dbi, &cursorPointer)
        guard rc == 0, let cursor = cursorPointer else { throw failure(rc, "mdb_cursor_open") }
        defer { mdb_cursor_close(cursor) }

        var key = MDB_val()
        var value = MDB_val()
        var visited = 0
        if !reverse {
            rc = seek(cursor, atOrAfter: range.start, &key, &value)
            while rc == 0 {
                let k = key.buffer
                if let end = range.end, compareBytes(k, end) >= 0 { break }
                if compareBytes(k, range.start) >= 0 {  // a seek on a truncated bound may land before start
                    guard try visit(k, value.buffer) else { return }
                    visited += 1
                    if let limit, visited >= limit { return }
                }
                rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
            }
        } else {
            if let end = range.end {
                rc = seek(cursor, atOrAfter: end, &key, &value)
                while rc == 0, compareBytes(key.buffer, end) < 0 {  // only after a truncated seek
                    rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
                }
                if rc == MDB_NOTFOUND { rc = mdb_cursor_get(cursor, &key, &value, MDB_LAST) }
                while rc == 0, compareBytes(key.buffer, end) >= 0 {
                    rc = mdb_cursor_get(cursor, &key, &value, MDB_PREV)
                }
            } else {
                rc = mdb_cursor_get(cursor, &key, &value, MDB_LAST)
            }
            while rc == 0 {
                let k = key.buffer
                if compareBytes(k, range.start) < 0 { break }
                guard try visit(k, value.buffer) else { return }
                visited += 1
                if let limit, visited >= limit { return }
                rc = mdb_cursor_get(cursor, &key, &value, MDB_PREV)
            }
        }
        if rc != 0 && rc != MDB_NOTFOUND { throw failure(rc, "mdb_cursor_get") }
    }

    /// Positions at the first key >= `bound` (LMDB cannot seek with keys longer than its key
    /// limit: those seek with the limit-long prefix, and the caller skips the keys before).
    private func seek(_ cursor: OpaquePointer, atOrAfter bound: [UInt8], _ key: inout MDB_val,
                      _ value: inout MDB_val) -> Int32 {
        if bound.isEmpty { return mdb_cursor_get(cursor, &key, &value, MDB_FIRST) }
        let seekKey = bound.count > maxKeySize ? Array(bound.prefix(maxKeySize)) : bound
        return withMDBVal(seekKey) { k in
            let rc = mdb_cursor_get(cursor, &k, &value, MDB_SET_RANGE)
            key = k
            return rc
        }
    }

    private func failure(_ rc: Int32, _ call: String) -> EngineError {
        LMDBErrors.error(rc, path: path, operation: "scan", context: call)
    }
}
