import EngineAPI

/// A table file as the manifest knows it.
struct FileMetadata {
    var number: UInt64
    var size: UInt64
    /// Smallest and largest internal keys.
    var smallest: [UInt8]
    var largest: [UInt8]
    /// Entries and deletion markers (tombstones) in the file.
    var entries: UInt64 = 0
    var deletions: UInt64 = 0

    /// Mostly tombstones: worth pushing down so they meet (and drop) what they delete.
    var isTombstoneHeavy: Bool { entries > 0 && deletions * 2 >= entries }
}

/// One manifest record: a change from one version to the next.
///
/// Encoding: a sequence of (tag varint, fields):
///   1 logNumber, 2 nextFileNumber, 3 lastSequence (varints);
///   4 deleted file: level, number;
///   5 new file: level, number, size, smallest (length-prefixed), largest (length-prefixed);
///   6 new file as 5, followed by entries and deletions (varints).
struct VersionEdit {
    var logNumber: UInt64?
    var nextFileNumber: UInt64?
    var lastSequence: UInt64?
    var deleted: [(level: Int, number: UInt64)] = []
    var added: [(level: Int, file: FileMetadata)] = []

    func encode() -> [UInt8] {
        var out: [UInt8] = []
        if let v = logNumber { out.appendVarint(1); out.appendVarint(v) }
        if let v = nextFileNumber { out.appendVarint(2); out.appendVarint(v) }
        if let v = lastSequence { out.appendVarint(3); out.appendVarint(v) }
        for d in deleted {
            out.appendVarint(4); out.appendVarint(UInt64(d.level)); out.appendVarint(d.number)
        }
        for a in added {
            out.appendVarint(6); out.appendVarint(UInt64(a.level)); out.appendVarint(a.file.number)
            out.appendVarint(a.file.size)
            out.appendLengthPrefixed(a.file.smallest)
            out.appendLengthPrefixed(a.file.largest)
            out.appendVarint(a.file.entries)
            out.appendVarint(a.file.deletions)
        }
        return out
    }

    static func decode(_ bytes: UnsafeRawBufferPointer, path: String, offset: Int) throws -> VersionEdit {
        var r = ByteReader(bytes)
        var e = VersionEdit()
        func bad() -> EngineError {
            FileSystem.corruption(path, "read manifest", offset: offset, "malformed version edit")
        }
        while !r.isAtEnd {
            guard let tag = r.varint() else { throw bad() }
            switch tag {
            case 1: guard let v = r.varint() else { throw bad() }; e.logNumber = v
            case 2: guard let v = r.varint() else { throw bad() }; e.nextFileNumber = v
            case 3: guard let v = r.varint() else { throw bad() }; e.lastSequence = v
            case 4:
                guard let l = r.varint(), l < UInt64(Version.levelCount), let n = r.varint() else { throw bad() }
                e.deleted.append((Int(l), n))
            case 5, 6:
                guard let l = r.varint(), l < UInt64(Version.levelCount), let n = r.varint(), let s = r.varint(),
                      let small = r.lengthPrefixed(), let large = r.lengthPrefixed(),
                      small.count >= 8, large.count >= 8 else { throw bad() }
                var meta = FileMetadata(number: n, size: s, smallest: Array(small), largest: Array(large))
                if tag == 6 {
                    guard let entries = r.varint(), let deletions = r.varint() else { throw bad() }
                    meta.entries = entries
                    meta.deletions = deletions
                }
                e.added.append((Int(l), meta))
            default:
                throw bad()
            }
        }
        return e
    }
}
