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
        EngineError(EngineError.Kind(levelDBStatus: message), engine: RocksDBEngine.engineName, path: path, operation: operation,
                    message: message)
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
