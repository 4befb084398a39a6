import EngineAPI
import Engines
#if canImport(Glibc)
import Glibc
#endif

/// Where `swift build`/`swift test` put `engine-kill-writer`: next to the test bundle
/// (.build/<config>/), unless RUSD_ENGINE_KILL_WRITER names it.
func killWriterPath() -> String? {
    if let env = getenv("RUSD_ENGINE_KILL_WRITER") { return String(cString: env) }
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    guard n > 0 else { return nil }
    var path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    // …/.build/debug/rusdPackageTests.xctest (a file on Linux, a bundle directory elsewhere)
    while let slash = path.lastIndex(of: "/") {
        path = String(path[..<slash])
        let candidate = path + "/engine-kill-writer"
        if access(candidate, X_OK) == 0 { return candidate }
        if path.hasSuffix("/.build") || path.isEmpty { break }
    }
    return nil
}

/// The conformance suite for a registered engine, opened through the registry like rusd does.
func conformanceSuite(_ engine: String, _ detection: EngineConformance.CorruptionDetection) -> EngineConformance {
    EngineConformance(engine: engine, corruptionDetection: detection, killWriterExecutable: killWriterPath()) {
        directory, options in try Engines.registry.open(engine, directory: directory, options: options)
    }
}
