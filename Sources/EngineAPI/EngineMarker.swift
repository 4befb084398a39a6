/// A rusd data directory's engine marker, `DATA_DIR/member/engine`: the name of the engine that
/// wrote the store, one line ("lmdb\n"), written when the store is created (rusd's
/// DataDirectory). Engines do not share file formats, so a store is opened only by the engine
/// its marker names.
///
/// The parsing is pure so that it can be fuzzed (Tests/Fuzz/Targets, `data-dir-marker`): for any
/// bytes, `check` accepts exactly the markers that name `engine`, and refuses every other with
/// a `Refusal` naming the data directory (a marker naming another engine) or the marker file
/// (a damaged one).
public enum EngineMarker {
    /// How much of the marker file rusd reads; a longer file is judged by that much.
    public static let readLimit = 256
    /// Longest engine name a marker can hold.
    public static let maximumNameLength = 64

    /// A marker that does not name the engine asked for; `description` is the message for the user.
    public struct Refusal: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// The marker file's contents for `engine`.
    public static func contents(for engine: String) -> [UInt8] { Array((engine + "\n").utf8) }

    /// The engine name `contents` records: line feeds removed, spaces trimmed at both ends; nil
    /// when the rest is not an engine name (empty, longer than `maximumNameLength`, or a byte
    /// other than an ASCII letter, digit, '-', '_' or '.').
    public static func recordedEngine(_ contents: [UInt8]) -> String? {
        var name = contents.filter { $0 != UInt8(ascii: "\n") }[...]
        while name.first == UInt8(ascii: " ") { name = name.dropFirst() }
        while name.last == UInt8(ascii: " ") { name = name.dropLast() }
        guard !name.isEmpty, name.count <= maximumNameLength, name.allSatisfy(isNameByte) else { return nil }
        return String(decoding: name, as: UTF8.self)
    }

    /// Accepts a marker (`contents` of `markerPath` in `dataDirectory`) that names `engine`;
    /// throws otherwise.
    public static func check(_ contents: [UInt8], engine: String, markerPath: String, dataDirectory: String) throws(Refusal) {
        guard let recorded = recordedEngine(contents) else {
            throw Refusal(description: "data directory \(dataDirectory) has a damaged engine marker (\(markerPath)): "
                + "\(quoted(contents)) is not an engine name; write the name of the engine that made the store into it "
                + "if you know it, else restore a snapshot")
        }
        guard recorded == engine else {
            throw Refusal(description: "data directory \(dataDirectory) was written by engine '\(recorded)', not '\(engine)': "
                + "start with --engine=\(recorded), or migrate with 'rusd snapshot restore' into a new data dir")
        }
    }

    private static func isNameByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
            return true
        default:
            return false
        }
    }

    /// The first 40 bytes, printable ASCII as is and the rest escaped (no terminal control
    /// bytes from a damaged file reach the log).
    private static func quoted(_ contents: [UInt8]) -> String {
        var out = "\""
        for b in contents.prefix(40) {
            switch b {
            case 0x20...0x7E where b != UInt8(ascii: "\"") && b != UInt8(ascii: "\\"): out.unicodeScalars.append(Unicode.Scalar(b))
            case UInt8(ascii: "\n"): out += "\\n"
            default:
                let hex = String(b, radix: 16)
                out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out + (contents.count > 40 ? "...\"" : "\"")
    }
}
