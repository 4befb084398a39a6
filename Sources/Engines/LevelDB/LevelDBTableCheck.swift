import EngineAPI

/// LevelDB checks that every table file the MANIFEST lists exists, but not its size; a table
/// cut short (or replaced) is only noticed when read, as an I/O error. With paranoid checks
/// the engine compares each live table file's size with the size the MANIFEST records
/// ("leveldb.sstables") at open and refuses a mismatch as corruption, naming the file.
enum LevelDBTableCheck {
    /// (file number, size in the MANIFEST) of every live table, from "leveldb.sstables" lines
    /// like " 5:1234['a' @ 1 : 1 .. 'z' @ 2 : 1]".
    static func liveTables(_ sstables: String) -> [(number: UInt64, size: UInt64)] {
        var out: [(UInt64, UInt64)] = []
        for line in sstables.split(separator: "\n") {
            let trimmed = line.drop(while: { $0 == " " })
            guard let colon = trimmed.firstIndex(of: ":"), let number = UInt64(trimmed[..<colon]) else { continue }
            let sizeDigits = trimmed[trimmed.index(after: colon)...].prefix(while: { $0.isASCII && $0.isNumber })
            guard let size = UInt64(sizeDigits) else { continue }
            out.append((number, size))
        }
        return out.map { (number: $0.0, size: $0.1) }
    }

    static func fileName(_ number: UInt64, _ suffix: String) -> String {
        let digits = String(number)
        return String(repeating: "0", count: max(0, 6 - digits.count)) + digits + suffix
    }

    /// Throws `.corruption` for the first live table whose file size differs from the MANIFEST.
    static func verify(directory: String, sstables: String) throws {
        for table in liveTables(sstables) {
            let candidates = [fileName(table.number, ".ldb"), fileName(table.number, ".sst")]
            guard let name = candidates.first(where: { PosixFiles.exists(directory + "/" + $0) }) else { continue }
            let path = directory + "/" + name
            let size = (try? PosixFiles.fileSize(path)) ?? 0
            if size != table.size {
                throw EngineError(.corruption, engine: LevelDBEngine.engineName, path: path, operation: "open",
                                  message: "table file has \(size) bytes but the MANIFEST records \(table.size): it was truncated or replaced")
            }
        }
    }
}

extension LevelDBTableCheck {
    /// Table files whose key range (from "leveldb.sstables") contains `key`: where a corrupt
    /// read most likely came from, since LevelDB's messages do not name the file.
    static func tables(containing key: [UInt8], sstables: String) -> [UInt64] {
        var out: [UInt64] = []
        for line in sstables.split(separator: "\n") {
            let text = Array(line.drop(while: { $0 == " " }).utf8)
            guard let colon = text.firstIndex(of: UInt8(ascii: ":")),
                  let number = UInt64(String(decoding: text[..<colon], as: UTF8.self)),
                  let open = text.firstIndex(of: UInt8(ascii: "[")), text.last == UInt8(ascii: "]") else { continue }
            let inner = Array(text[(open + 1)..<(text.count - 1)])
            // 'smallest' @ seq : type .. 'largest' @ seq : type
            let marker = Array("' @ ".utf8)
            guard inner.first == UInt8(ascii: "'"),
                  let firstEnd = firstIndex(of: marker, in: inner, from: 1),
                  let lastEnd = lastIndex(of: marker, in: inner), lastEnd > firstEnd,
                  let separator = firstIndex(of: Array(" .. '".utf8), in: inner, from: firstEnd) else { continue }
            let smallest = unescape(Array(inner[1..<firstEnd]))
            let largest = unescape(Array(inner[(separator + 5)..<lastEnd]))
            if !key.lexicographicallyPrecedes(smallest) && !largest.lexicographicallyPrecedes(key) {
                out.append(number)
            }
        }
        return out
    }

    private static func firstIndex(of needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        for i in start...(haystack.count - needle.count) where Array(haystack[i..<(i + needle.count)]) == needle {
            return i
        }
        return nil
    }

    private static func lastIndex(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in stride(from: haystack.count - needle.count, through: 0, by: -1)
        where Array(haystack[i..<(i + needle.count)]) == needle {
            return i
        }
        return nil
    }

    /// LevelDB's EscapeString: printable ASCII as is, other bytes as \xNN.
    private static func unescape(_ text: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < text.count {
            if text[i] == UInt8(ascii: "\\"), i + 3 < text.count, text[i + 1] == UInt8(ascii: "x"),
               let byte = UInt8(String(decoding: text[(i + 2)...(i + 3)], as: UTF8.self), radix: 16) {
                out.append(byte)
                i += 4
            } else {
                out.append(text[i])
                i += 1
            }
        }
        return out
    }
}
