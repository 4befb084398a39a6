#if canImport(Glibc)
import Glibc
#endif

// Helpers for engines built on a C key-value library (LevelDB, RocksDB, LMDB): keys and values
// cross the C API as pointer + length, and keys are ordered bytewise.

/// Runs `body` with a pointer to `bytes` that is never null (the C APIs take pointer + length;
/// an empty array has no storage, and some libraries refuse a null pointer even with length 0).
@inlinable @inline(__always)
package func withCBytes<T>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>, Int) throws -> T) rethrows -> T {
    try bytes.withUnsafeBytes { raw in
        if let base = raw.baseAddress {
            return try body(base.assumingMemoryBound(to: CChar.self), raw.count)
        }
        var zero: CChar = 0
        return try body(&zero, 0)
    }
}

/// Bytewise comparison (memcmp, then length): negative, zero or positive. The order of keys in
/// every engine.
@inlinable @inline(__always)
package func compareBytes(_ a: UnsafeRawBufferPointer, _ b: [UInt8]) -> Int {
    b.withUnsafeBytes { b in
        let n = min(a.count, b.count)
        if n > 0, let pa = a.baseAddress, let pb = b.baseAddress {
            let c = memcmp(pa, pb, n)
            if c != 0 { return Int(c) }
        }
        return a.count - b.count
    }
}

extension EngineError.Kind {
    /// The kind of a LevelDB-family status string (`Status::ToString` in LevelDB and RocksDB:
    /// "Corruption: …", "NotFound: …", "IO error: …", "Invalid argument: …").
    package init(levelDBStatus message: String) {
        if message.hasPrefix("Corruption:") {
            self = .corruption
        } else if message.hasPrefix("NotFound:") || message.contains("does not exist (create_if_missing is false)") {
            self = .notFound
        } else if message.contains("No space left on device") || message.contains("Disk quota exceeded") {
            self = .full
        } else if message.hasPrefix("Invalid argument:") {
            self = .invalidArgument
        } else {
            self = .io
        }
    }
}
