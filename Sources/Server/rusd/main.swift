#if canImport(Glibc)
import Glibc
#endif
import EngineAPI
import Engines
import Logging

// rusd: an etcd v3 compatible server. `rusd [flags]` serves; `rusd snapshot restore ...` restores.

func fail(_ message: String, code: Int32 = 1) -> Never {
    FileDescriptorOutput.standardError.write("rusd: \(message)\n")
    exit(code)
}

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "snapshot" { SnapshotCommand.run(Array(arguments.dropFirst())) }
let environment: [String: String] = {
    var env: [String: String] = [:]
    var cursor = environ
    while let entry = cursor.pointee {
        let text = String(cString: entry)
        if let eq = text.firstIndex(of: "=") { env[String(text[..<eq])] = String(text[text.index(after: eq)...]) }
        cursor += 1
    }
    return env
}()

let flags: ParsedFlags
do {
    flags = try FlagSet.rusd.parse(arguments, environment: environment)
} catch {
    FileDescriptorOutput.standardError.write("rusd: \(error)\nRun 'rusd --help' for the list of flags.\n")
    exit(2)
}
if flags.bool("help") {
    print(FlagSet.rusd.usage(program: "rusd"))
    exit(0)
}
if flags.bool("version") {
    print("rusd Version: \(RusdVersion.rusd)\netcd API Version: \(RusdVersion.etcdAPI)\nEngines: \(Engines.registry.names.joined(separator: ", "))")
    exit(0)
}
if !flags.positional.isEmpty {
    fail("unexpected arguments: \(flags.positional.joined(separator: " ")) (see rusd --help)", code: 2)
}

let config: ServerConfig
do {
    config = try ServerConfig(flags)
} catch {
    fail("\(error)", code: 2)
}

let logFD: Int32 = config.logOutputs == "stdout" ? STDOUT_FILENO : STDERR_FILENO
let logLevel = JSONLogHandler.level(named: config.logLevel)
LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: logLevel, fileDescriptor: logFD) }
var logger = Logger(label: "rusd")
for shadowed in flags.shadowedEnvironment {
    logger.warning("conflicting environment variable is shadowed by corresponding command-line flag", metadata: ["environment-variable": "\(shadowed)"])
}

guard Engines.registry.names.contains(config.engine) else {
    fail("unknown engine '\(config.engine)'; valid engines: \(Engines.registry.names.joined(separator: ", "))", code: 2)
}

let dataDirectory: DataDirectory
do {
    dataDirectory = try DataDirectory(path: config.dataDirectory, engine: config.engine)
} catch {
    fail("\(error)")
}

// Cluster mode: a new store, or one the shared log was trimmed past, starts from the log's snapshot.
if !config.sharedLog.isEmpty { SharedLogCatchUp.run(config: config, dataDirectory: dataDirectory, logger: logger) }

let engine: any StorageEngine
do {
    let opened = try Engines.registry.open(config.engine, directory: dataDirectory.storePath)
    if config.unsafeNoFsync {
        engine = UnsyncedEngine(opened)
    } else {
        engine = try ClusterLocalFsync.engine(opened, config: config, logger: logger) ?? opened
    }
} catch {
    fail("cannot open the \(config.engine) store: \(error)")
}
if config.unsafeNoFsync {
    logger.warning("--unsafe-no-fsync: writes are acknowledged before they reach stable storage; a machine crash may lose them")
}
logger.info("opened storage engine", metadata: ["engine": "\(config.engine)", "data-dir": "\(config.dataDirectory)"])

serve(config: config, engine: engine, logger: logger)
