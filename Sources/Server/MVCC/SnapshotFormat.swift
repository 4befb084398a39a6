import EngineAPI

/// The store's records as a snapshot sees them, for code outside the MVCC module that exports
/// a store to another format or imports one (Sources/Server/Snapshot): one version of a key,
/// the store's metadata, and the engine entries that hold them (`StorageLayout`). Nothing
/// here knows the file format.
public enum SnapshotFormat {
    /// One version of a key: what a revision record holds (`RevisionRecord`).
    public struct Version: Sendable, Equatable {
        public var revision: Revision
        public var isTombstone: Bool
        public var key: [UInt8]
        public var value: [UInt8]
        public var createRevision: Int64
        public var version: Int64
        public var lease: Int64

        public init(revision: Revision, isTombstone: Bool, key: [UInt8], value: [UInt8],
                    createRevision: Int64, version: Int64, lease: Int64) {
            self.revision = revision
            self.isTombstone = isTombstone
            self.key = key
            self.value = value
            self.createRevision = createRevision
            self.version = version
            self.lease = lease
        }

        /// etcd's mvccpb.KeyValue of this version, as etcd stores it in its `key` bucket (a
        /// tombstone is the key alone).
        public var etcdKeyValue: [UInt8] {
            var out: [UInt8] = []
            out.reserveCapacity(key.count + value.count + 40)
            key.withUnsafeBytes { k in
                if isTombstone {
                    EtcdKeyValueEncoding.append(to: &out, key: k, createRevision: 0, modRevision: 0, version: 0,
                                                value: UnsafeRawBufferPointer(start: nil, count: 0), lease: 0)
                } else {
                    value.withUnsafeBytes { v in
                        EtcdKeyValueEncoding.append(to: &out, key: k, createRevision: createRevision,
                                                    modRevision: revision.main, version: version, value: v, lease: lease)
                    }
                }
            }
            return out
        }

        /// The engine entry (key, value) that stores this version.
        public var engineEntry: (key: [UInt8], value: [UInt8]) {
            (StorageLayout.revisionKey(revision),
             isTombstone ? RevisionRecord.encodeTombstone(key: key)
                         : RevisionRecord.encodePut(key: key, value: value, createRevision: createRevision,
                                                    version: version, lease: lease))
        }
    }

    /// The engine entry (key, value) that stores a version given by borrowed bytes (as
    /// `Version.engineEntry`, without the intermediate copies; `value` ignored for a tombstone).
    public static func engineEntry(revision: Revision, isTombstone: Bool, key: UnsafeRawBufferPointer,
                                   value: UnsafeRawBufferPointer, createRevision: Int64, version: Int64,
                                   lease: Int64) -> (key: [UInt8], value: [UInt8]) {
        (StorageLayout.revisionKey(revision),
         RevisionRecord.encode(isTombstone: isTombstone, key: key, value: value, createRevision: createRevision,
                               version: version, lease: lease))
    }

    /// The store's metadata. Compaction revisions are -1 when the store was never compacted.
    public struct Meta: Sendable, Equatable {
        public var currentRevision: Int64
        public var compactRevision: Int64
        public var finishedCompactRevision: Int64
        public var appliedIndex: UInt64

        public init(currentRevision: Int64, compactRevision: Int64, finishedCompactRevision: Int64, appliedIndex: UInt64) {
            self.currentRevision = currentRevision
            self.compactRevision = compactRevision
            self.finishedCompactRevision = finishedCompactRevision
            self.appliedIndex = appliedIndex
        }

        /// The engine entries of a store with this metadata (layout version included).
        public var engineEntries: [(key: [UInt8], value: [UInt8])] {
            var out: [(key: [UInt8], value: [UInt8])] = [
                (MetaKey.layoutVersion.engineKey, MetaKey.encode(StoreLoader.layoutVersion)),
                (MetaKey.currentRevision.engineKey, MetaKey.encode(UInt64(bitPattern: currentRevision))),
                (MetaKey.appliedIndex.engineKey, MetaKey.encode(appliedIndex)),
            ]
            if compactRevision >= 0 {
                out.append((MetaKey.compactRevision.engineKey, MetaKey.encode(UInt64(bitPattern: compactRevision))))
            }
            if finishedCompactRevision >= 0 {
                out.append((MetaKey.finishedCompactRevision.engineKey, MetaKey.encode(UInt64(bitPattern: finishedCompactRevision))))
            }
            return out
        }
    }

    /// Reads the metadata of the store in `view`.
    public static func meta(in view: any ReadView) throws -> Meta {
        func get(_ k: MetaKey) throws -> UInt64? {
            guard let v = try view.get(k.engineKey) else { return nil }
            return try MetaKey.decode(v, name: k.rawValue)
        }
        let compact = try get(.compactRevision).map { Int64(bitPattern: $0) } ?? -1
        var current = Int64(bitPattern: try get(.currentRevision) ?? 0)
        // As StoreLoader: the newest record may be newer than the recorded revision.
        var last: Int64 = 0
        try view.scan(StorageLayout.revisionRange, reverse: true, limit: 1) { k, _ in
            if let r = StorageLayout.parseRevisionKey(k) { last = r.main }
            return false
        }
        current = max(current, last, compact, 1)
        return Meta(currentRevision: current, compactRevision: compact,
                    finishedCompactRevision: try get(.finishedCompactRevision).map { Int64(bitPattern: $0) } ?? -1,
                    appliedIndex: try get(.appliedIndex) ?? 0)
    }

    /// One version as the engine holds it, borrowed from the scan: `key` and `value` are valid
    /// only during the visit (copy what you keep). Lets an export skip copying every version.
    public struct VersionRecord {
        public var revision: Revision
        public var isTombstone: Bool
        public var key: UnsafeRawBufferPointer
        public var value: UnsafeRawBufferPointer
        public var createRevision: Int64
        public var version: Int64
        public var lease: Int64

        /// The byte count of `appendEtcdKeyValue`'s output, computed without encoding.
        public var etcdKeyValueCount: Int {
            isTombstone
                ? EtcdKeyValueEncoding.count(keyCount: key.count, createRevision: 0, modRevision: 0, version: 0, valueCount: 0, lease: 0)
                : EtcdKeyValueEncoding.count(keyCount: key.count, createRevision: createRevision, modRevision: revision.main,
                                             version: version, valueCount: value.count, lease: lease)
        }

        /// Appends etcd's mvccpb.KeyValue of this version (`Version.etcdKeyValue`) to `out`.
        public func appendEtcdKeyValue(to out: inout [UInt8]) {
            if isTombstone {
                EtcdKeyValueEncoding.append(to: &out, key: key, createRevision: 0, modRevision: 0, version: 0,
                                            value: UnsafeRawBufferPointer(start: nil, count: 0), lease: 0)
            } else {
                EtcdKeyValueEncoding.append(to: &out, key: key, createRevision: createRevision, modRevision: revision.main,
                                            version: version, value: value, lease: lease)
            }
        }

        /// A copy that owns its bytes.
        public var copied: Version {
            Version(revision: revision, isTombstone: isTombstone, key: Array(key), value: Array(value),
                    createRevision: createRevision, version: version, lease: lease)
        }
    }

    /// Visits every version in `view` in revision order. Throws `MVCCError.corruption` on a
    /// record that does not parse.
    public static func forEachVersion(in view: any ReadView, _ visit: (Version) throws -> Void) throws {
        try forEachVersionRecord(in: view) { try visit($0.copied) }
    }

    /// `forEachVersion` without copies: each record borrowed from the engine's scan.
    public static func forEachVersionRecord(in view: any ReadView, _ visit: (VersionRecord) throws -> Void) throws {
        try view.scan(StorageLayout.revisionRange, reverse: false, limit: nil) { k, v in
            guard let rev = StorageLayout.parseRevisionKey(k) else {
                throw MVCCError.corruption("engine key of \(k.count) bytes in the revision namespace is not a revision key")
            }
            let h = try RevisionRecord.parseHeader(v, revision: rev)
            let keyEnd = RevisionRecord.headerSize + h.keyLength
            try visit(VersionRecord(revision: rev, isTombstone: h.isTombstone,
                                    key: UnsafeRawBufferPointer(rebasing: v[RevisionRecord.headerSize ..< keyEnd]),
                                    value: UnsafeRawBufferPointer(rebasing: v[keyEnd...]),
                                    createRevision: h.createRevision, version: h.version, lease: h.lease))
            return true
        }
    }
}

/// CRC-32C (Castagnoli), for code outside the module that must reproduce etcd's checksums
/// (e.g. `etcdctl snapshot status`'s hash).
public struct Castagnoli: Sendable {
    private var crc = CRC32C()
    public init() {}
    public mutating func update(_ bytes: [UInt8]) { crc.update(bytes) }
    public var value: UInt32 { crc.value }
}
