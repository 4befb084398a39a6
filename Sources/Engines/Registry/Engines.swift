import EngineAPI
import LMDBEngine
import LevelDBEngine
import LSMEngine
import RocksDBEngine
import SQLiteEngine

/// Every storage engine built into rusd, by the name `--engine` takes. The first is the default.
/// Adding an engine is one line here (and its target in `Engines`' dependencies).
public enum Engines {
    public static let registry = EngineRegistry([
        (name: LMDBEngine.engineName, open: { @Sendable directory, options in try LMDBEngine.open(directory: directory, options: options) }),
        (name: LevelDBEngine.engineName, open: { @Sendable directory, options in try LevelDBEngine.open(directory: directory, options: options) }),
        (name: LSMEngine.engineName, open: { @Sendable directory, options in try LSMStore.open(directory: directory, options: options) }),
        (name: RocksDBEngine.engineName, open: { @Sendable directory, options in try RocksDBEngine.open(directory: directory, options: options) }),
        (name: SQLiteEngine.engineName, open: { @Sendable directory, options in try SQLiteEngine.open(directory: directory, options: options) }),
    ])

    /// The engine `rusd` uses when `--engine` is not given.
    public static let defaultName = LMDBEngine.engineName
}
