import CSQLite
import EngineAPI

/// Maps SQLite result codes to `EngineError`: SQLITE_CORRUPT and SQLITE_NOTADB are
/// `.corruption`, SQLITE_FULL is `.full`, a value or statement SQLite refuses is
/// `.invalidArgument`, everything else (I/O, locking, memory) is `.io`. Messages carry SQLite's
/// own text and the extended result code.
enum SQLiteErrors {
    static func kind(of code: Int32) -> EngineError.Kind {
        switch code & 0xFF {
        case SQLITE_CORRUPT, SQLITE_NOTADB: return .corruption
        case SQLITE_FULL: return .full
        case SQLITE_TOOBIG, SQLITE_RANGE, SQLITE_MISMATCH, SQLITE_CONSTRAINT: return .invalidArgument
        default: return .io
        }
    }

    /// The error for result `code`, with the connection's message when `db` is given (it must be
    /// the connection whose call returned `code`, read before any other call on it).
    static func error(_ code: Int32, _ db: OpaquePointer?, path: String, operation: String,
                      context: String = "") -> EngineError {
        var text = String(cString: sqlite3_errstr(code))
        if let db, let message = sqlite3_errmsg(db) {
            let detail = String(cString: message)
            if detail != text { text = detail + " (" + text + ")" }
        }
        text += " [SQLite result code \(code)]"
        if !context.isEmpty { text = context + ": " + text }
        return EngineError(kind(of: code), engine: SQLiteEngine.engineName, path: path, operation: operation,
                           message: text)
    }

    static func closed(path: String, operation: String) -> EngineError {
        EngineError(.closed, engine: SQLiteEngine.engineName, path: path, operation: operation,
                    message: "the engine was closed")
    }

    static func posix(_ e: PosixError, operation: String) -> EngineError {
        EngineError(.io, engine: SQLiteEngine.engineName, path: e.path, operation: operation, message: e.message)
    }
}
