import EngineAPI
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A `StorageEngine` in memory for unit tests of the layers above the engines: a sorted array
/// under a lock. Counts writes and synced writes so tests can check group commit. `failWrites`
/// makes every following write throw an I/O error. Views are copies (consistent by construction).
public final class InMemoryEngine: StorageEngine {
    public let name = "memory"
    public let directory: String

    struct State {
        var keys: [[UInt8]] = []
        var values: [[UInt8]] = []
        var writes = 0
        var syncedWrites = 0
        var failWrites = false
        var syncDelayMicroseconds: UInt32 = 0
        var closed = false
    }
    let state = Mutex(State())

    public init(directory: String = "memory") {
        self.directory = directory
    }

    public var writeCount: Int { state.withLock { $0.writes } }
    public var syncedWriteCount: Int { state.withLock { $0.syncedWrites } }
    public func setFailWrites(_ fail: Bool) { state.withLock { $0.failWrites = fail } }
    /// Makes every synced write take this long (a stand-in for fsync latency).
    public func setSyncDelay(microseconds: UInt32) { state.withLock { $0.syncDelayMicroseconds = microseconds } }
    /// Number of stored entries whose key starts with `prefix`.
    public func count(prefix: [UInt8]) -> Int {
        state.withLock { $0.keys.filter { $0.starts(with: prefix) }.count }
    }

    static func less(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                let n = min(pa.count, pb.count)
                if n > 0 {
                    let c = memcmp(pa.baseAddress!, pb.baseAddress!, n)
                    if c != 0 { return c < 0 }
                }
                return pa.count < pb.count
            }
        }
    }

    static func lowerBound(_ keys: [[UInt8]], _ key: [UInt8]) -> Int {
        var lo = 0, hi = keys.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if less(keys[mid], key) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    private func error(_ op: String) -> EngineError {
        EngineError(.closed, engine: name, path: directory, operation: op, message: "closed")
    }

    public func get(_ key: [UInt8]) throws -> [UInt8]? {
        try state.withLock { s in
            if s.closed { throw error("get") }
            let i = Self.lowerBound(s.keys, key)
            return i < s.keys.count && s.keys[i] == key ? s.values[i] : nil
        }
    }

    public func readView() throws -> any ReadView {
        try state.withLock { s in
            if s.closed { throw error("readView") }
            return MemoryView(keys: s.keys, values: s.values)
        }
    }

    public func write(_ batch: WriteBatch, sync: Bool) throws {
        let delay = state.withLock { $0.syncDelayMicroseconds }
        if sync && delay > 0 { usleep(delay) }
        try state.withLock { s in
            if s.closed { throw error("write") }
            if s.failWrites {
                throw EngineError(.io, engine: name, path: directory, operation: "write", message: "injected failure")
            }
            for op in batch.operations {
                switch op {
                case .put(let k, let v):
                    let i = Self.lowerBound(s.keys, k)
                    if i < s.keys.count && s.keys[i] == k { s.values[i] = v } else {
                        s.keys.insert(k, at: i)
                        s.values.insert(v, at: i)
                    }
                case .delete(let k):
                    let i = Self.lowerBound(s.keys, k)
                    if i < s.keys.count && s.keys[i] == k {
                        s.keys.remove(at: i)
                        s.values.remove(at: i)
                    }
                }
            }
            s.writes += 1
            if sync { s.syncedWrites += 1 }
        }
    }

    public func reclaimSpace() throws {}

    public func stats() throws -> EngineStats {
        try state.withLock { s in
            if s.closed { throw error("stats") }
            let bytes = s.keys.reduce(0) { $0 + $1.count } + s.values.reduce(0) { $0 + $1.count }
            return EngineStats(liveBytes: UInt64(bytes), diskBytes: UInt64(bytes), bytesWrittenSinceOpen: 0,
                               entryCount: UInt64(s.keys.count), details: [:])
        }
    }

    public func close() throws { state.withLock { $0.closed = true } }
}

final class MemoryView: ReadView {
    let keys: [[UInt8]]
    let values: [[UInt8]]
    init(keys: [[UInt8]], values: [[UInt8]]) {
        self.keys = keys
        self.values = values
    }

    func get(_ key: [UInt8]) throws -> [UInt8]? {
        let i = InMemoryEngine.lowerBound(keys, key)
        return i < keys.count && keys[i] == key ? values[i] : nil
    }

    func scan(_ range: KeyRange, reverse: Bool, limit: Int?,
              _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        let lo = InMemoryEngine.lowerBound(keys, range.start)
        let hi = range.end.map { InMemoryEngine.lowerBound(keys, $0) } ?? keys.count
        guard lo < hi else { return }
        var n = 0
        let idx: [Int] = reverse ? Array((lo..<hi).reversed()) : Array(lo..<hi)
        for i in idx {
            if let limit, n >= limit { return }
            n += 1
            let go = try keys[i].withUnsafeBytes { k in try values[i].withUnsafeBytes { v in try visit(k, v) } }
            if !go { return }
        }
    }
}
