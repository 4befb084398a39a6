import CLMDB
import EngineAPI
#if canImport(Glibc)
import Glibc
#endif

/// Maps liblmdb return codes to `EngineError` kinds, keeping LMDB's own message.
enum LMDBErrors {
    static func error(_ rc: Int32, path: String, operation: String, context: String = "") -> EngineError {
        let library = String(cString: mdb_strerror(rc))
        let message = context.isEmpty ? library : "\(context): \(library)"
        return EngineError(kind(of: rc), engine: LMDBEngine.engineName, path: path, operation: operation,
                           message: message)
    }

    static func kind(of rc: Int32) -> EngineError.Kind {
        switch rc {
        case MDB_NOTFOUND, ENOENT:
            return .notFound
        case MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_INVALID, MDB_VERSION_MISMATCH, MDB_PANIC, MDB_BAD_TXN:
            return .corruption
        case MDB_MAP_FULL, ENOSPC, EDQUOT:
            return .full
        case MDB_BAD_VALSIZE, EINVAL:
            return .invalidArgument
        default:
            return .io
        }
    }

    static func closed(path: String, operation: String) -> EngineError {
        EngineError(.closed, engine: LMDBEngine.engineName, path: path, operation: operation,
                    message: "the engine was closed")
    }

    static func posix(_ error: PosixError, kind: EngineError.Kind = .io, operation: String) -> EngineError {
        EngineError(kind, engine: LMDBEngine.engineName, path: error.path, operation: operation,
                    message: error.message)
    }
}

/// Runs `body` with an MDB_val pointing at `bytes` (never a null pointer, even when empty).
@inline(__always)
func withMDBVal<T>(_ bytes: [UInt8], _ body: (inout MDB_val) throws -> T) rethrows -> T {
    try bytes.withUnsafeBytes { raw in
        var one: UInt8 = 0
        return try withUnsafeMutablePointer(to: &one) { fallback in
            let base = raw.baseAddress.map { UnsafeMutableRawPointer(mutating: $0) } ?? UnsafeMutableRawPointer(fallback)
            var val = MDB_val(mv_size: raw.count, mv_data: base)
            return try body(&val)
        }
    }
}

extension MDB_val {
    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: mv_data, count: mv_size) }
}
