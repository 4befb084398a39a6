/// Every failure an engine reports: what happened (`kind`) and where (engine, path, operation).
public struct EngineError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// The store (or the named engine) does not exist.
        case notFound = "not found"
        /// Stored data failed a checksum or structural check. Never served as data.
        case corruption
        /// The operating system refused a read, write, sync, open or rename.
        case io = "I/O error"
        /// The size limit or the disk is exhausted.
        case full = "store full"
        /// The engine (or view) was closed.
        case closed
        /// The caller passed something the engine cannot accept (bad options, unknown engine name).
        case invalidArgument = "invalid argument"
    }

    public var kind: Kind
    /// Registry name of the engine ("lmdb", "leveldb", "lsm", or "registry").
    public var engine: String
    /// The file or directory concerned.
    public var path: String
    /// The operation that failed ("open", "write", "get", "scan", "reclaimSpace", ...).
    public var operation: String
    /// Details: the library's message, an offset, an errno string.
    public var message: String

    public init(_ kind: Kind, engine: String, path: String, operation: String, message: String) {
        self.kind = kind
        self.engine = engine
        self.path = path
        self.operation = operation
        self.message = message
    }

    public var description: String {
        "\(engine): \(operation) \(path): \(kind.rawValue): \(message)"
    }
}
