import EngineAPI

/// Point reads and ordered scans on one connection (a pooled reader, or a view's).
enum SQLiteReads {
    static func get(_ connection: SQLiteConnection, _ key: [UInt8]) throws -> [UInt8]? {
        try connection.with(.get, operation: "get") { statement in
            try key.withUnsafeBytes { k in
                try statement.bind(1, k, operation: "get")
                guard try statement.step(operation: "get") else { return nil }
                return Array(try statement.blob(0, operation: "get"))
            }
        }
    }

    /// The entries of `range` in key order (descending with `reverse`), at most `limit`.
    static func scan(_ connection: SQLiteConnection, _ range: KeyRange, reverse: Bool, limit: Int?,
                     _ visit: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool) throws {
        if let limit, limit <= 0 { return }
        if let end = range.end, !range.start.lexicographicallyPrecedes(end) { return }
        let query: SQLiteQuery = range.end == nil
            ? (reverse ? .scanFromReverse : .scanFrom)
            : (reverse ? .scanFromToReverse : .scanFromTo)
        try connection.with(query, operation: "scan") { statement in
            try range.start.withUnsafeBytes { start in
                try (range.end ?? []).withUnsafeBytes { end in
                    try statement.bind(1, start, operation: "scan")
                    if range.end != nil { try statement.bind(2, end, operation: "scan") }
                    var visited = 0
                    while try statement.step(operation: "scan") {
                        let key = try statement.blob(0, operation: "scan")
                        let value = try statement.blob(1, operation: "scan")
                        guard try visit(key, value) else { return }
                        visited += 1
                        if let limit, visited >= limit { return }
                    }
                }
            }
        }
    }
}
