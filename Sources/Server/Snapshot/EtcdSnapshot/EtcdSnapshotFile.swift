import Auth
import BBolt
import EngineAPI
import EtcdProto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import MVCC
import SwiftProtobuf

/// An etcd snapshot file (a bbolt database in etcd's layout, with or without the SHA-256
/// trailer `etcdctl snapshot save` appends: a file of 512·n + 32 bytes has one, as etcdctl
/// decides) or an etcd data dir's `member/snap/db`. Nothing in it is trusted: every problem is
/// an `EtcdSnapshotError` naming the file and, where one applies, the offset.
public struct EtcdSnapshotFile {
    public let path: String
    /// Whether the file ends with a SHA-256 trailer (checked by `verifyChecksum`).
    public let hasChecksum: Bool
    let file: BBoltFile
    let reader: BBoltReader

    /// What `etcdctl snapshot status` reports.
    public struct Status: Sendable, Equatable {
        /// CRC-32C over every bucket name, key and value, in order.
        public var hash: UInt32
        /// The main revision of the last record in the `key` bucket.
        public var revision: Int64
        /// Keys in all buckets.
        public var totalKey: Int
        /// Bytes of the database (pages in use × page size).
        public var totalSize: Int
    }

    public init(path: String) throws {
        self.path = path
        do {
            file = try BBoltFile(path: path)
            if file.size >= 8, try file.read(at: 0, count: 8) == Array("RUSDSNAP".utf8) {
                throw EtcdSnapshotError("\(path): a snapshot in rusd's former format (RUSDSNAP), which this version no longer reads; restore it with the rusd that wrote it, then save an etcd-format snapshot")
            }
            hasChecksum = file.size % 512 == 32
            if hasChecksum { file.size -= 32 }
            reader = try BBoltReader(file)
        } catch let e as BBoltError {
            throw EtcdSnapshotError("snapshot \(path): \(e)")
        }
    }

    /// Checks the SHA-256 trailer (when the file has one) against the database bytes.
    public func verifyChecksum() throws {
        guard hasChecksum else { return }
        do {
            var sha = SnapshotDigest()
            var offset = 0
            while offset < file.size {
                let n = min(1 << 20, file.size - offset)
                sha.update(try file.read(at: offset, count: n))
                offset += n
            }
            file.size += 32
            defer { file.size -= 32 }
            guard try file.read(at: offset, count: 32) == sha.finalize() else {
                throw EtcdSnapshotError("snapshot \(path), offset \(offset): SHA-256 mismatch: the 32-byte trailer does not match the database before it (corrupt or truncated snapshot)")
            }
        } catch let e as BBoltError {
            throw EtcdSnapshotError("snapshot \(path): \(e)")
        }
    }

    /// Walks the whole database (every page checked) and computes etcdctl's status.
    public func status() throws -> Status {
        var crc = Castagnoli()
        var total = 0
        var revision: Int64 = 0
        try forEachBucket { name, bucket, visited in
            crc.update(name)
            let isKey = name == EtcdLayout.keyBucket
            try reader.forEach(bucket, visited: visited) { e in
                crc.update(e.key)
                if e.nested == nil { crc.update(e.value) }
                if isKey {
                    guard let (rev, _) = EtcdLayout.parseRevisionKey(e.key) else {
                        throw EtcdSnapshotError("snapshot \(path): key of \(e.key.count) bytes in bucket \"key\" is not a revision")
                    }
                    revision = rev.main
                }
                total += 1
            }
        }
        return Status(hash: crc.value, revision: revision, totalKey: total, totalSize: reader.byteSize)
    }

    /// Calls `body` for each top-level bucket in name order; a top-level key that is not a
    /// bucket is an error (as in etcdctl).
    func forEachBucket(_ body: ([UInt8], BBoltReader.Bucket, VisitedPages) throws -> Void) throws {
        let visited = VisitedPages()
        var buckets: [([UInt8], BBoltReader.Bucket)] = []
        do {
            try reader.forEach(reader.root, visited: visited) { e in
                guard let nested = e.nested else {
                    throw EtcdSnapshotError("snapshot \(path): top-level key \(String(decoding: e.key, as: UTF8.self)) is not a bucket")
                }
                buckets.append((e.key, nested))
            }
            for (name, bucket) in buckets { try body(name, bucket, visited) }
        } catch let e as BBoltError {
            throw EtcdSnapshotError("snapshot \(path): \(e)")
        }
    }
}
