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
    static func pickLevel(_ version: Version, _ meta: FileMetadata,
                          running: (smallest: [UInt8], largest: [UInt8])? = nil) -> Int {
        meta.smallest.withUnsafeBytes { s in
            meta.largest.withUnsafeBytes { l in pickLevel(version, smallestUser: userKey(s), largestUser: userKey(l), running: running) }
        }
    }

    /// The smallest and largest user keys of `files` (nil when there are none).
    static func userKeyRange(_ files: [FileMetadata]) -> (smallest: [UInt8], largest: [UInt8])? {
        guard var smallest = files.first?.smallest.withUnsafeBytes({ Array(userKey($0)) }),
              var largest = files.first?.largest.withUnsafeBytes({ Array(userKey($0)) }) else { return nil }
        for f in files.dropFirst() {
            f.smallest.withUnsafeBytes { s in
                if smallest.withUnsafeBytes({ compareBytes(userKey(s), $0) < 0 }) { smallest = Array(userKey(s)) }
            }
            f.largest.withUnsafeBytes { l in
                if largest.withUnsafeBytes({ compareBytes(userKey(l), $0) > 0 }) { largest = Array(userKey(l)) }
            }
        }
        return (smallest, largest)
    }

    /// `pickLevel` for a table whose user keys span smallestUser ... largestUser, while the
    /// compaction job whose inputs span the user keys `running` (nil: none) is between its
    /// output files (where flushes wait for it; `LSMEngine.merge`). The job's outputs are not in
    /// `version` yet, but hold only keys of its inputs, so a table whose range does not touch
    /// `running` overlaps neither its inputs nor its outputs at any level: placed as if no job
    /// ran, levels 1+ keep disjoint files when the job's edit replaces its inputs by its
    /// outputs, the newest version of a key stays above its older ones, and the tombstones the
    /// job drops (judged on the version it started from) are of keys the table does not hold.
    /// The flush's manifest edit is logged before the job's, and either order of replay ends
    /// in the same levels. A range that touches the job's goes to level 0 (the newest data,
    /// which may overlap anything).
    static func pickLevel(_ version: Version, smallestUser su: UnsafeRawBufferPointer, largestUser lu: UnsafeRawBufferPointer,
                          running: (smallest: [UInt8], largest: [UInt8])? = nil) -> Int {
        if let running {
            let disjoint = running.largest.withUnsafeBytes { compareBytes($0, su) < 0 }
                || running.smallest.withUnsafeBytes { compareBytes($0, lu) > 0 }
            if !disjoint { return 0 }
        }
        if version.overlaps(level: 0, smallestUser: su, largestUser: lu) { return 0 }
        var level = 0
        while level < Version.bottomLevel {
            if version.overlaps(level: level + 1, smallestUser: su, largestUser: lu) { break }
            level += 1
        }
        return level
    }
}
