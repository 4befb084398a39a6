/// A table in a version: its metadata and the open reader.
struct TableFile {
    var meta: FileMetadata
    var table: Table

    var number: UInt64 { meta.number }
    var size: UInt64 { meta.size }
}

/// An immutable set of table files per level. Level 0 holds flushed memtables whose key
/// ranges may overlap (ordered newest first); levels 1... hold files with disjoint key ranges,
/// ordered by key. Readers hold a version for as long as they read (a `ReadView` pins one).
final class Version: @unchecked Sendable {
    static let levelCount = 7
    static var bottomLevel: Int { levelCount - 1 }

    let levels: [[TableFile]]
    /// Bytes of every table.
    let totalBytes: UInt64

    init(levels: [[TableFile]]) {
        self.levels = levels
        totalBytes = levels.reduce(0) { t, l in l.reduce(t) { $0 + $1.size } }
    }

    static let empty = Version(levels: Array(repeating: [], count: levelCount))

    func bytes(level: Int) -> UInt64 { levels[level].reduce(0) { $0 + $1.size } }

    var allFiles: [TableFile] { levels.flatMap { $0 } }

    /// The version with `edit` applied; `tables` supplies readers for added files.
    func applying(_ edit: VersionEdit, tables: [UInt64: Table]) -> Version {
        var lv = levels
        for d in edit.deleted {
            lv[d.level].removeAll { $0.number == d.number }
        }
        for a in edit.added {
            guard let t = tables[a.file.number] else { continue }
            lv[a.level].append(TableFile(meta: a.file, table: t))
        }
        lv[0].sort { $0.number > $1.number }
        for l in 1..<Version.levelCount {
            lv[l].sort { f1, f2 in
                f1.meta.smallest.withUnsafeBytes { a in f2.meta.smallest.withUnsafeBytes { b in compareInternalKeys(a, b) < 0 } }
            }
        }
        return Version(levels: lv)
    }

    /// Whether any file of `level` overlaps the user-key range [smallest, largest].
    func overlaps(level: Int, smallestUser: UnsafeRawBufferPointer, largestUser: UnsafeRawBufferPointer) -> Bool {
        !overlapping(level: level, smallestUser: smallestUser, largestUser: largestUser).isEmpty
    }

    /// Indices of the files of `level` whose user-key ranges intersect [smallestUser, largestUser].
    func overlapping(level: Int, smallestUser: UnsafeRawBufferPointer, largestUser: UnsafeRawBufferPointer) -> [Int] {
        var result: [Int] = []
        for (i, f) in levels[level].enumerated() {
            let disjoint = f.meta.largest.withUnsafeBytes { compareBytes(userKey($0), smallestUser) < 0 }
                || f.meta.smallest.withUnsafeBytes { compareBytes(userKey($0), largestUser) > 0 }
            if !disjoint { result.append(i) }
        }
        return result
    }

    /// Point lookup of the internal key `target` (user key at the reader's sequence); `cursor`
    /// is the caller's scratch space.
    func get(_ target: UnsafeRawBufferPointer, cursor: BlockCursor) throws -> LookupResult {
        let user = userKey(target)
        let hash = BloomFilter.hash(user)
        for f in levels[0] {
            let inRange = f.meta.smallest.withUnsafeBytes { compareBytes(userKey($0), user) <= 0 }
                && f.meta.largest.withUnsafeBytes { compareBytes(userKey($0), user) >= 0 }
            if inRange {
                let r = try f.table.get(target, hash: hash, cursor: cursor)
                if case .notFound = r { continue }
                return r
            }
        }
        for level in 1..<Version.levelCount {
            let files = levels[level]
            if files.isEmpty { continue }
            // First file whose largest user key >= user.
            var lo = 0, hi = files.count
            while lo < hi {
                let mid = (lo + hi) >> 1
                if files[mid].meta.largest.withUnsafeBytes({ compareInternalKeys($0, target) < 0 }) { lo = mid + 1 } else { hi = mid }
            }
            guard lo < files.count else { continue }
            let f = files[lo]
            if f.meta.smallest.withUnsafeBytes({ compareBytes(userKey($0), user) > 0 }) { continue }
            let r = try f.table.get(target, hash: hash, cursor: cursor)
            if case .notFound = r { continue }
            return r
        }
        return .notFound
    }

    /// Iterators over every table, for merging: level 0 file by file, deeper levels one
    /// concatenating iterator each.
    func iterators() -> [any InternalIterator] {
        var its: [any InternalIterator] = levels[0].map { $0.table.makeIterator() }
        for level in 1..<Version.levelCount where !levels[level].isEmpty {
            its.append(LevelIterator(files: levels[level]))
        }
        return its
    }
}

/// Iterates the disjoint, ordered files of one level as one sequence, opening each file's
/// iterator as it gets there.
final class LevelIterator: InternalIterator {
    private let files: [TableFile]
    private var fileIndex = -1
    private var current: TableIterator?

    init(files: [TableFile]) {
        self.files = files
    }

    var isValid: Bool { current?.isValid ?? false }
    var key: UnsafeRawBufferPointer { current!.key }
    var value: UnsafeRawBufferPointer { current!.value }

    private func open(_ i: Int) {
        if i >= 0 && i < files.count {
            fileIndex = i
            current = files[i].table.makeIterator()
        } else {
            fileIndex = -1
            current = nil
        }
    }

    private func forwardToValid() throws {
        while let c = current, !c.isValid {
            open(fileIndex + 1)
            try current?.seekToFirst()
        }
    }

    private func backwardToValid() throws {
        while let c = current, !c.isValid {
            open(fileIndex - 1)
            try current?.seekToLast()
        }
    }

    func seekToFirst() throws {
        open(0)
        try current?.seekToFirst()
        try forwardToValid()
    }

    func seekToLast() throws {
        open(files.count - 1)
        try current?.seekToLast()
        try backwardToValid()
    }

    func seek(_ target: UnsafeRawBufferPointer) throws {
        var lo = 0, hi = files.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if files[mid].meta.largest.withUnsafeBytes({ compareInternalKeys($0, target) < 0 }) { lo = mid + 1 } else { hi = mid }
        }
        open(lo)
        try current?.seek(target)
        try forwardToValid()
    }

    func seekBefore(_ target: UnsafeRawBufferPointer) throws {
        // Last file whose smallest < target.
        var lo = 0, hi = files.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if files[mid].meta.smallest.withUnsafeBytes({ compareInternalKeys($0, target) < 0 }) { lo = mid + 1 } else { hi = mid }
        }
        open(lo - 1)
        try current?.seekBefore(target)
        try backwardToValid()
    }

    func next() throws {
        try current?.next()
        try forwardToValid()
    }

    func prev() throws {
        try current?.prev()
        try backwardToValid()
    }
}
