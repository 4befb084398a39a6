import EngineAPI

/// Every storage engine built into rusd, by the name `--engine` takes.
public enum Engines {
    public static let registry = EngineRegistry([])
}
