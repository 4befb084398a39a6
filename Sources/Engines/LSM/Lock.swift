import EngineAPI

// The LSM engine's locks are EngineAPI's (shared by the engines).
typealias Lock = EngineMutex
typealias Condition = EngineCondition
