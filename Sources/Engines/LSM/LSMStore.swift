import EngineAPI

/// The handle callers hold on an `LSMEngine`. The engine's background thread keeps the engine
/// itself alive, so releasing the engine without `close()` could never run a deinit; this
/// handle's deinit closes it instead (stops the background thread, releases the LOCK), as the
/// engine contract asks. Views keep working on the engine until it is closed, then throw
/// `.closed`.
public final class LSMStore: StorageEngine {
    public let engine: LSMEngine

    /// Opens (or creates) the store in `directory`; see `LSMEngine.open`.
    public static func open(directory: String, options: EngineOptions = EngineOptions()) throws -> LSMStore {
        LSMStore(engine: try LSMEngine.open(directory: directory, options: options))
    }

    init(engine: LSMEngine) {
        self.engine = engine
    }

    deinit {
        try? engine.close()
    }

    public var name: String { engine.name }
    public var directory: String { engine.directory }
    public func get(_ key: [UInt8]) throws -> [UInt8]? { try engine.get(key) }
    public func readView() throws -> any ReadView { try engine.readView() }
    public func write(_ batch: WriteBatch, sync: Bool) throws { try engine.write(batch, sync: sync) }
    public func reclaimSpace() throws { try engine.reclaimSpace() }
    public func stats() throws -> EngineStats { try engine.stats() }
    public func close() throws { try engine.close() }
}
