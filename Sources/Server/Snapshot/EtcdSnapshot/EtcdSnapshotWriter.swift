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

/// Writes a store as etcd 3.4 writes its snapshots: a bbolt database in etcd's layout
/// (`EtcdLayout`) followed by the SHA-256 of every byte before it, which `etcdctl snapshot
/// status` and `etcdctl snapshot restore` accept.
///
/// Everything comes from one engine read view, so the snapshot is consistent while writes go
/// on. The view is read twice (`BBoltWriter` needs the page count before the first byte): a
/// counting pass that takes only the size of each record, then the pass that builds and emits
/// the pages. Memory stays at one chunk plus one page per tree level.
public enum EtcdSnapshotWriter {
    /// The emit callback asked to stop (the client went away).
    public struct Stopped: Error {
        public init() {}
    }

    /// Streams the snapshot of the store in `engine` to `emit` in chunks of about `chunkSize`
    /// bytes (the last ends with the SHA-256), each with the snapshot's total length (known
    /// before the first chunk). `emit` returning false stops the stream and throws `Stopped`.
    /// The store's alarm records go into the `alarm` bucket as etcd's alarm store writes them.
    /// Returns the total length (database + 32).
    @discardableResult
    public static func write(engine: any StorageEngine, chunkSize: Int = 32 * 1024,
                             emit: @escaping (_ chunk: [UInt8], _ total: Int) -> Bool) throws -> Int {
        let view = try engine.readView()
        let alarmKeys = try alarmRecords(view)
        let plan = try database(view, alarmKeys: alarmKeys, plan: nil, sink: nil)
        let total = Int(plan.pageCount) * BBoltFormat.defaultPageSize + SnapshotDigest.size
        let out = ChunkedOutput(chunkSize: chunkSize) { emit($0, total) }
        try database(view, alarmKeys: alarmKeys, plan: plan, sink: { page in try out.append(page) })
        return try out.finish()
    }

    /// The marshalled AlarmMembers of the store's alarm records, ascending (the record keys
    /// without their prefix).
    static func alarmRecords(_ view: any ReadView) throws -> [[UInt8]] {
        var keys: [[UInt8]] = []
        var end = ServerRecords.alarmPrefix
        end[end.count - 1] += 1
        try view.scan(KeyRange(start: ServerRecords.alarmPrefix, end: end), reverse: false, limit: nil) { k, _ in
            if k.count > ServerRecords.alarmPrefix.count { keys.append(Array(k[ServerRecords.alarmPrefix.count...])) }
            return true
        }
        return keys
    }

    /// Builds the database from `view` through one `BBoltWriter`. `alarmKeys`: the marshalled
    /// AlarmMembers, ascending.
    @discardableResult
    static func database(_ view: any ReadView, alarmKeys: [[UInt8]] = [], plan: BBoltWriter.Plan?,
                         sink: BBoltWriter.Sink?) throws -> BBoltWriter.Plan {
        var w = try BBoltWriter(plan: plan, sink: sink)
        let meta = try SnapshotFormat.meta(in: view)
        let auth: AuthState
        if let bytes = try view.get(ServerRecords.authKey) {
            guard let decoded = AuthState(decoding: bytes) else {
                throw EtcdSnapshotError("the store's auth record does not decode")
            }
            auth = decoded
        } else {
            auth = AuthState()
        }

        try w.beginBucket(EtcdLayout.alarmBucket)
        for k in alarmKeys { try w.put(k, []) }
        try w.endBucket()

        try w.beginBucket(EtcdLayout.authBucket)
        try w.put(EtcdLayout.authEnabledKey, [auth.enabled ? 1 : 0])
        var revision: [UInt8] = []
        EtcdLayout.appendBigEndian(&revision, auth.revision)
        try w.put(EtcdLayout.authRevisionKey, revision)
        try w.endBucket()

        try w.beginBucket(EtcdLayout.authRolesBucket)
        for role in auth.roles.values.sorted(by: { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }) {
            var r = Authpb_Role()
            r.name = Data(role.name.utf8)
            r.keyPermission = role.permissions.map { p in
                var q = Authpb_Permission()
                q.permType = Authpb_Permission.TypeEnum(rawValue: p.kind.rawValue) ?? .read
                q.key = Data(p.key)
                q.rangeEnd = Data(p.rangeEnd)
                return q
            }
            try w.put(Array(role.name.utf8), try r.serializedBytes())
        }
        try w.endBucket()

        try w.beginBucket(EtcdLayout.authUsersBucket)
        for user in auth.users.values.sorted(by: { Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8)) }) {
            var u = Authpb_User()
            u.name = Data(user.name.utf8)
            u.password = Data(user.passwordHash.utf8)
            u.roles = user.roles
            if user.noPassword { u.options.noPassword = true }
            try w.put(Array(user.name.utf8), try u.serializedBytes())
        }
        try w.endBucket()

        try w.beginBucket(EtcdLayout.clusterBucket)
        try w.put(EtcdLayout.clusterVersionKey, EtcdLayout.clusterVersion)
        try w.endBucket()

        try w.beginBucket(EtcdLayout.keyBucket)
        if w.isPlanning {
            // Sizes are all the plan needs: nothing is encoded.
            try SnapshotFormat.forEachVersionRecord(in: view) { v in
                try w.put(keyCount: EtcdLayout.revisionKeyCount(tombstone: v.isTombstone), valueCount: v.etcdKeyValueCount)
            }
        } else {
            var key: [UInt8] = [], value: [UInt8] = []
            try SnapshotFormat.forEachVersionRecord(in: view) { v in
                key.removeAll(keepingCapacity: true)
                EtcdLayout.appendRevisionKey(&key, v.revision, tombstone: v.isTombstone)
                value.removeAll(keepingCapacity: true)
                v.appendEtcdKeyValue(to: &value)
                try w.put(key, value)
            }
        }
        try w.endBucket()

        try w.beginBucket(EtcdLayout.leaseBucket)
        try view.scan(KeyRange.prefix([ServerRecords.leasePrefix]), reverse: false, limit: nil) { k, v in
            guard k.count == 9, v.count == 8 else {
                throw EtcdSnapshotError("corrupt lease record in the store (key \(k.count) bytes, value \(v.count) bytes)")
            }
            let key = Array(k[1...])
            let ttl = Int64(bitPattern: UInt64(littleEndian: v.loadUnaligned(as: UInt64.self)))
            try w.put(key, LeaseRecord(id: Int64(bitPattern: EtcdLayout.loadBigEndian(key, 0)), ttl: ttl).encoded)
            return true
        }
        try w.endBucket()

        try w.beginBucket(EtcdLayout.membersBucket)
        var members: [([UInt8], [UInt8])] = []
        try view.scan(KeyRange.prefix(ServerRecords.memberPrefix), reverse: false, limit: nil) { k, v in
            guard k.count == ServerRecords.memberPrefix.count + 8 else { return true }
            let id = EtcdLayout.loadBigEndian(Array(k), ServerRecords.memberPrefix.count)
            members.append((Array(String(id, radix: 16).utf8), Array(v)))
            return true
        }
        for (k, v) in members.sorted(by: { $0.0.lexicographicallyPrecedes($1.0) }) { try w.put(k, v) }
        try w.endBucket()

        try w.beginBucket(EtcdLayout.membersRemovedBucket)
        try w.endBucket()

        try w.beginBucket(EtcdLayout.metaBucket)
        var index: [UInt8] = []
        EtcdLayout.appendBigEndian(&index, meta.appliedIndex)
        try w.put(EtcdLayout.consistentIndexKey, index)
        if meta.finishedCompactRevision >= 0 {
            try w.put(EtcdLayout.finishedCompactKey,
                      EtcdLayout.revisionKey(Revision(main: meta.finishedCompactRevision, sub: 0), tombstone: false))
        }
        if meta.compactRevision >= 0 {
            try w.put(EtcdLayout.scheduledCompactKey,
                      EtcdLayout.revisionKey(Revision(main: meta.compactRevision, sub: 0), tombstone: false))
        }
        try w.endBucket()
        return try w.finish()
    }
}

/// Collects pages into chunks, hashes them, and hands them on.
private final class ChunkedOutput {
    let chunkSize: Int
    let emit: ([UInt8]) -> Bool
    var chunk: [UInt8] = []
    var sha = SnapshotDigest()
    var total = 0

    init(chunkSize: Int, emit: @escaping ([UInt8]) -> Bool) {
        self.chunkSize = chunkSize
        self.emit = emit
        chunk.reserveCapacity(chunkSize + 4096)
    }

    func append(_ page: [UInt8]) throws {
        sha.update(page)
        chunk.append(contentsOf: page)
        total += page.count
        if chunk.count >= chunkSize {
            guard emit(chunk) else { throw EtcdSnapshotWriter.Stopped() }
            chunk.removeAll(keepingCapacity: true)
        }
    }

    func finish() throws -> Int {
        chunk.append(contentsOf: sha.finalize())
        total += SnapshotDigest.size
        guard emit(chunk) else { throw EtcdSnapshotWriter.Stopped() }
        return total
    }
}

/// A snapshot that cannot be written or read; names the file and offset where one applies.
public struct EtcdSnapshotError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
