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
