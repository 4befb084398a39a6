import EngineAPI

/// How the store lays its data out in the engine's single ordered key space.
///
/// Every engine key starts with a one-byte namespace:
///
/// | key                                           | value                                     |
/// |-----------------------------------------------|-------------------------------------------|
/// | `r` main(8 BE) `_` sub(8 BE)   (18 bytes)     | a `RevisionRecord` (one version of a key) |
/// | `m` name                                      | store metadata (`MetaKey`), 8-byte LE ints |
/// | `l` …, `a` …                                  | reserved for the server (leases, auth), written through `StoreWriter.stageAuxiliary` |
///
/// As in etcd, history is keyed by revision (so a write appends, and a scan of `r` in key order
/// is a scan in revision order), and the key → revisions index lives in memory, rebuilt at start
/// by one sequential scan of `r` that parses only each record's fixed header and key.
public enum StorageLayout {
    public static let revisionPrefix: UInt8 = UInt8(ascii: "r")
    public static let metaPrefix: UInt8 = UInt8(ascii: "m")
    /// Prefixes the server may use for its own records (leases, auth, members, alarms).
    public static let leasePrefix: UInt8 = UInt8(ascii: "l")
    public static let authPrefix: UInt8 = UInt8(ascii: "a")
    public static let clusterPrefix: UInt8 = UInt8(ascii: "c")

    /// Length of a revision record's engine key.
    public static let revisionKeyLength = 18

    /// The engine key of the record of `rev`.
    public static func revisionKey(_ rev: Revision) -> [UInt8] {
        var k: [UInt8] = []
        k.reserveCapacity(revisionKeyLength)
        k.append(revisionPrefix)
        k.appendBigEndian(UInt64(bitPattern: rev.main))
        k.append(UInt8(ascii: "_"))
        k.appendBigEndian(UInt64(bitPattern: rev.sub))
        return k
    }

    /// Parses an engine key written by `revisionKey`, or nil when it is not one.
    static func parseRevisionKey(_ k: UnsafeRawBufferPointer) -> Revision? {
        guard k.count == revisionKeyLength, k[0] == revisionPrefix, k[9] == UInt8(ascii: "_") else { return nil }
        return Revision(main: Int64(bitPattern: k.loadBigEndianUInt64(at: 1)),
                        sub: Int64(bitPattern: k.loadBigEndianUInt64(at: 10)))
    }

    /// Every revision record.
    static let revisionRange = KeyRange(start: [revisionPrefix], end: [revisionPrefix + 1])

    /// Revision records with main revision in [from, to] (inclusive).
    static func revisionRange(fromMain: Int64, throughMain: Int64) -> KeyRange {
        KeyRange(start: revisionKey(Revision(main: fromMain, sub: 0)),
                 end: revisionKey(Revision(main: throughMain + 1, sub: 0)))
    }
}

/// Names of the store's metadata records (`m` namespace). Values are 8-byte little-endian.
public enum MetaKey: String, Sendable {
    /// The store's current main revision after the last committed batch.
    case currentRevision = "currentRevision"
    /// The revision of the last compaction (index and logical history): reads below it fail.
    case compactRevision = "compactRevision"
    /// The revision up to which old records were physically deleted. Less than
    /// `compactRevision` after a crash in the middle of a physical compaction; the next start
    /// finishes it.
    case finishedCompactRevision = "finishedCompactRevision"
    /// Index of the last applied log entry (etcd's consistent index).
    case appliedIndex = "appliedIndex"
    /// Layout version of this store.
    case layoutVersion = "layoutVersion"

    var engineKey: [UInt8] { [StorageLayout.metaPrefix] + Array(rawValue.utf8) }

    static func encode(_ v: UInt64) -> [UInt8] {
        var b: [UInt8] = []
        b.reserveCapacity(8)
        b.appendLittleEndian(v)
        return b
    }

    static func decode(_ b: [UInt8], name: String) throws(MVCCError) -> UInt64 {
        guard b.count == 8 else {
            throw .corruption("meta record \(name) has \(b.count) bytes, expected 8")
        }
        return b.withUnsafeBytes { $0.loadLittleEndianUInt64(at: 0) }
    }
}
