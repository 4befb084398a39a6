#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fuzz target: one function of the input bytes that returns normally for every input, or
/// throws `FuzzFinding` when the code under test broke its contract (a trap is a finding too,
/// caught by libFuzzer). The same targets run under libFuzzer (Tests/Fuzz/Main, scripts/fuzz.sh)
/// and replay the committed corpus in `swift test` (Tests/FuzzReplayTests).
///
/// Two modules: this one holds the targets of file formats and markers, which link only the
/// engines and the snapshot reader; ServerFuzzTargets (Tests/Fuzz/ServerTargets) the ones that
/// drive an `EtcdServer`, and `FuzzTarget.all`. Under the fuzzers' instrumentation the server's
/// modules (swift-nio, swift-crypto's BoringSSL, ...) take most of the build, so CI's short
/// libFuzzer runs build this module alone (scripts/fuzz.sh).
public struct FuzzTarget: Sendable {
    public let name: String
    /// Runs one input; `scratch` is a directory the target may write files into.
    public let run: @Sendable (_ input: [UInt8], _ scratch: String) throws -> Void

    public init(name: String, run: @escaping @Sendable (_ input: [UInt8], _ scratch: String) throws -> Void) {
        self.name = name
        self.run = run
    }

    /// The targets of this module, cheapest first. Names are the corpus folders under Tests/FuzzCorpus.
    public static let fileFormats: [FuzzTarget] = ParserTargets.all + [MarkerTarget.target, SnapshotTarget.target]
}

/// A broken contract: wrong data, an error of the wrong kind, or one that names no file/offset.
public struct FuzzFinding: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Writes `bytes` to `path` (truncating); traps only if the scratch directory is unusable,
/// which is the harness's fault, not the input's.
func writeScratchFile(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { fatalError("fuzz scratch: cannot create \(path)") }
    defer { close(fd) }
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, $0.count - done) }
        guard n > 0 else { fatalError("fuzz scratch: cannot write \(path)") }
        done += n
    }
}

/// Splits `bytes` into chunks, each a 2-byte little-endian length followed by that many bytes
/// (the last one cut short): how log targets turn an input into record payloads.
func lengthPrefixedChunks(_ bytes: ArraySlice<UInt8>) -> [[UInt8]] {
    var out: [[UInt8]] = []
    var i = bytes.startIndex
    while i < bytes.endIndex, out.count < 1024 {
        let lo = Int(bytes[i]), hi = i + 1 < bytes.endIndex ? Int(bytes[i + 1]) : 0
        let start = min(i + 2, bytes.endIndex), end = min(start + (lo | hi << 8), bytes.endIndex)
        out.append(Array(bytes[start..<end]))
        i = end
    }
    return out
}
