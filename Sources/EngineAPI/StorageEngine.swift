// The engine interface: an ordered byte-key / byte-value store.
//
// Modelled on LevelDB's include/leveldb/db.h: a handful of operations, each with its contract.
// Keys and values are arbitrary byte strings ([UInt8]); keys order bytewise (memcmp, shorter
// prefix first), so 0x00 and 0xFF bytes are ordinary key bytes.
//
// Thread-safety: every method of `StorageEngine` may be called from any thread, concurrently.
// Writes are serialized inside the engine, in the order in which `write` calls acquire the
// engine's write lock; a `ReadView` is used by one thread at a time (it may move between threads).
// After `close()` every call throws `EngineError` of kind `.closed`.

/// An open engine instance, bound to one directory.
public protocol StorageEngine: AnyObject, Sendable {
    /// The registry name of this engine ("lmdb", "leveldb", "lsm").
    var name: String { get }

    /// The directory this engine was opened at.
    var directory: String { get }

    /// The value stored under `key`, or nil. Reads the latest committed state.
    func get(_ key: [UInt8]) throws -> [UInt8]?

    /// A consistent, read-only view of the store as of the moment of the call. Writes that
    /// commit after the call are not visible through it; it stays valid until it is released
    /// (deinit) or the engine is closed. Views are cheap; long-lived views may pin old data
    /// (disk space is reclaimed only after they end).
    func readView() throws -> any ReadView

    /// Applies every operation of `batch` atomically, in order: after a crash either all of
    /// them are visible or none is. With `sync: true` the call returns only once the batch is
    /// on stable storage (fsync/fdatasync done); with `sync: false` a crash may lose the batch
    /// (never part of it). Batches are applied in the order their `write` calls are serialized.
    func write(_ batch: WriteBatch, sync: Bool) throws

    /// Reclaims space: compaction (LSM/LevelDB) or defragmentation (LMDB). Reads and writes
    /// keep working while it runs, or wait; they never fail because of it. Returns when done.
    func reclaimSpace() throws

    /// Current statistics. Cheap enough to call once per second.
    func stats() throws -> EngineStats

    /// Flushes what must be flushed and releases every resource. Idempotent. Views still
    /// alive after close throw `.closed` on use.
    func close() throws
}

/// A consistent read-only snapshot of an engine (see `StorageEngine.readView()`).
public protocol ReadView: AnyObject, Sendable {
    /// The value of `key` in this view, or nil.
    func get(_ key: [UInt8]) throws -> [UInt8]?

    /// Visits the entries whose keys lie in `range`, in ascending key order, or descending with
    /// `reverse: true`, at most `limit` of them (nil: no limit). `visit` returns false to stop
    /// early. The buffers passed to `visit` are valid only during that call: copy what you keep.
    func scan(_ range: KeyRange, reverse: Bool, limit: Int?,
              _ visit: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool) throws
}

extension ReadView {
    /// Convenience: the entries of `range` as an array of copies.
    public func entries(_ range: KeyRange, reverse: Bool = false, limit: Int? = nil) throws -> [KeyValue] {
        var out: [KeyValue] = []
        try scan(range, reverse: reverse, limit: limit) { k, v in
            out.append(KeyValue(key: Array(k), value: Array(v)))
            return true
        }
        return out
    }
}

/// A key/value pair.
public struct KeyValue: Sendable, Hashable {
    public var key: [UInt8]
    public var value: [UInt8]
    public init(key: [UInt8], value: [UInt8]) {
        self.key = key
        self.value = value
    }
}

/// A half-open key interval [start, end). `end == nil` means "every key >= start".
public struct KeyRange: Sendable, Hashable {
    public var start: [UInt8]
    public var end: [UInt8]?
    public init(start: [UInt8], end: [UInt8]?) {
        self.start = start
        self.end = end
    }
    /// Every key.
    public static let all = KeyRange(start: [], end: nil)

    /// Every key that begins with `prefix`.
    public static func prefix(_ prefix: [UInt8]) -> KeyRange {
        KeyRange(start: prefix, end: KeyRange.successor(ofPrefix: prefix))
    }

    /// The smallest key greater than every key with this prefix, or nil when there is none
    /// (the prefix is empty or all 0xFF).
    public static func successor(ofPrefix prefix: [UInt8]) -> [UInt8]? {
        var p = prefix
        while let last = p.last {
            if last < 0xFF {
                p[p.count - 1] = last + 1
                return p
            }
            p.removeLast()
        }
        return nil
    }

    public func contains(_ key: [UInt8]) -> Bool {
        guard !key.lexicographicallyPrecedes(start) else { return false }
        if let end { return key.lexicographicallyPrecedes(end) }
        return true
    }
}
