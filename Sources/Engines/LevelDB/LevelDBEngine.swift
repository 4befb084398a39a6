import CLevelDB
import EngineAPI

public final class LevelDBEngine {
    public static let engineName = "leveldb"
    public static func open(directory: String, options: EngineOptions) throws -> any StorageEngine {
        throw EngineError(.invalidArgument, engine: engineName, path: directory, operation: "open", message: "not yet")
    }
}
