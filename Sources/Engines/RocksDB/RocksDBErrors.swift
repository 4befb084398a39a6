import CRocksDB
import EngineAPI
#if canImport(Glibc)
import Glibc
#endif

/// Maps RocksDB's status strings (`Status::ToString`: "Corruption: …", "IO error: …",
/// "Invalid argument: …") to `EngineError` kinds. Every C call that takes an `errptr` goes
/// through `take`, so no failure of the library is dropped.
enum RocksDBErrors {
    /// Takes ownership of `errptr` (frees it); nil when there was no error.
    static func take(_ errptr: UnsafeMutablePointer<CChar>?, path: String, operation: String) -> EngineError? {
        guard let errptr else { return nil }
        let message = String(cString: errptr)
        rocksdb_free(errptr)
        return error(message, path: path, operation: operation)
    }

    static func error(_ message: String, path: String, operation: String) -> EngineError {
        EngineError(kind(of: message), engine: RocksDBEngine.engineName, path: path, operation: operation,
                    message: message)
    }

    static func kind(of message: String) -> EngineError.Kind {
        if message.hasPrefix("Corruption:") { return .corruption }
        if message.hasPrefix("NotFound:") { return .notFound }
        if message.contains("does not exist (create_if_missing is false)") { return .notFound }
        if message.contains("No space left on device") || message.contains("Disk quota exceeded") { return .full }
        if message.hasPrefix("Invalid argument:") { return .invalidArgument }
        return .io
    }

    static func closed(path: String, operation: String) -> EngineError {
        EngineError(.closed, engine: RocksDBEngine.engineName, path: path, operation: operation,
                    message: "the engine was closed")
    }

    /// A C constructor that returned NULL (allocation failure inside the library).
    static func allocationFailed(_ function: String, path: String, operation: String) -> EngineError {
        EngineError(.io, engine: RocksDBEngine.engineName, path: path, operation: operation,
                    message: "\(function) returned nothing")
    }
}

/// Runs `body` with a pointer to `bytes` that is never null (RocksDB's C API takes pointer +
/// length; an empty array has no storage).
@inline(__always)
func withCBytes<T>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>, Int) throws -> T) rethrows -> T {
    try bytes.withUnsafeBytes { raw in
        if let base = raw.baseAddress {
            return try body(base.assumingMemoryBound(to: CChar.self), raw.count)
        }
        var zero: CChar = 0
        return try body(&zero, 0)
    }
}

/// Bytewise comparison (memcmp, then length): negative, zero or positive.
@inline(__always)
func compareBytes(_ a: UnsafeRawBufferPointer, _ b: [UInt8]) -> Int {
    b.withUnsafeBytes { b in
        let n = min(a.count, b.count)
        if n > 0, let pa = a.baseAddress, let pb = b.baseAddress {
            let c = memcmp(pa, pb, n)
            if c != 0 { return Int(c) }
        }
        return a.count - b.count
    }
}
