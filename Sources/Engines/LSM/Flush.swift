import EngineAPI

/// Writing a memtable to a table file, and choosing its level.
enum Flush {
    /// Writes every entry of `mem` to table `number` and opens it; with a Bloom filter unless
    /// `filter` is false (see `TableBuilder.init`).
    static func writeTable(_ mem: Memtable, directory: String, number: UInt64, filter: Bool = true) throws -> (FileMetadata, Table) {
        let path = FileNames.table(directory, number)
        let builder = try TableBuilder(path: path, filter: filter)
        let it = mem.makeIterator()
        it.seekToFirst()
        while it.isValid {
            try builder.add(it.key, it.value)
            it.next()
        }
        let summary = try builder.finish()
        let table = try Table(path: path, number: number)
        var meta = FileMetadata(number: number, size: summary.fileSize, smallest: summary.smallest, largest: summary.largest)
        meta.entries = UInt64(summary.entries)
        meta.deletions = UInt64(summary.deletions)
        return (meta, table)
    }

    /// The deepest level a new table can go to without compaction: it must not overlap any
    /// file in the levels above its destination nor the destination itself. Revision-ordered
    /// keys (etcd) never overlap older data, so flushed tables land directly in the bottom level
    /// and are never rewritten (a trivial move at flush time).
    static func pickLevel(_ version: Version, _ meta: FileMetadata) -> Int {
        meta.smallest.withUnsafeBytes { s in
            meta.largest.withUnsafeBytes { l in pickLevel(version, smallestUser: userKey(s), largestUser: userKey(l)) }
        }
    }

    /// `pickLevel` for a table whose user keys span smallestUser ... largestUser.
    static func pickLevel(_ version: Version, smallestUser su: UnsafeRawBufferPointer, largestUser lu: UnsafeRawBufferPointer) -> Int {
        if version.overlaps(level: 0, smallestUser: su, largestUser: lu) { return 0 }
        var level = 0
        while level < Version.bottomLevel {
            if version.overlaps(level: level + 1, smallestUser: su, largestUser: lu) { break }
            level += 1
        }
        return level
    }
}
