/// Maps engine names to the functions that open them, so `--engine=NAME` picks one at startup.
/// The `Engines` module provides the registry of every engine built into rusd.
public struct EngineRegistry: Sendable {
    /// Opens (creating if allowed by options) the engine's store in `directory`.
    public typealias Opener = @Sendable (_ directory: String, _ options: EngineOptions) throws -> any StorageEngine

    private let openers: [(name: String, open: Opener)]

    public init(_ openers: [(name: String, open: Opener)]) {
        self.openers = openers
    }

    /// The engine names, in registration order.
    public var names: [String] { openers.map(\.name) }

    /// Opens engine `name` at `directory`. An unknown name throws `.invalidArgument` naming
    /// the valid ones.
    public func open(_ name: String, directory: String, options: EngineOptions = EngineOptions()) throws -> any StorageEngine {
        guard let entry = openers.first(where: { $0.name == name }) else {
            throw EngineError(.invalidArgument, engine: "registry", path: directory, operation: "open",
                              message: "unknown engine '\(name)'; valid engines: \(names.joined(separator: ", "))")
        }
        return try entry.open(directory, options)
    }
}
