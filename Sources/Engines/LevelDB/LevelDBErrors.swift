import CLevelDB
import EngineAPI
#if canImport(Glibc)
import Glibc
#endif

/// Maps LevelDB's status strings ("Corruption: …", "IO error: …") to `EngineError` kinds.
enum LevelDBErrors {
    /// Takes ownership of `errptr` (frees it); nil when there was no error.
    static func take(_ errptr: UnsafeMutablePointer<CChar>?, path: String, operation: String) -> EngineError? {
        guard let errptr else { return nil }
        let message = String(cString: errptr)
        leveldb_free(errptr)
        return error(message, path: path, operation: operation)
    }

    static func error(_ message: String, path: String, operation: String) -> EngineError {
        EngineError(EngineError.Kind(levelDBStatus: message), engine: LevelDBEngine.engineName, path: path, operation: operation,
                    message: message)
    }

    static func closed(path: String, operation: String) -> EngineError {
        EngineError(.closed, engine: LevelDBEngine.engineName, path: path, operation: operation,
                    message: "the engine was closed")
    }
}
