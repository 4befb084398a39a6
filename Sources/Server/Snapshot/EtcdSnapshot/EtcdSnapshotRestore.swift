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

extension EtcdSnapshotFile {
    /// What a restore wrote.
    public struct RestoreSummary: Sendable {
        public var versions = 0
        public var leases = 0
        public var users = 0
        public var roles = 0
        /// The alarms the snapshot's `alarm` bucket holds (written to the store: raised when
        /// the restored store starts, as etcd does).
        public var alarms: [Etcdserverpb_AlarmMember] = []
        public var meta = SnapshotFormat.Meta(currentRevision: 1, compactRevision: -1, finishedCompactRevision: -1, appliedIndex: 1)
    }

    /// Writes the snapshot's store into `engine` (which should be empty) in rusd's layout: every
    /// version of every key (history and deletions kept), the compaction revisions, the
    /// consistent index (as the applied index), leases, users, roles, the auth switch and auth
    /// revision, and the alarms (also returned in the summary). Members are not carried over
    /// (rusd's member comes from its flags, as etcdctl snapshot restore replaces them).
    /// Verifies the SHA-256 trailer first unless the caller just did (`checksumVerified`).
    /// Batches of about `batchBytes`, written by a second thread while the next one is decoded
    /// (`PipelinedBatchWriter`); the last write is synced. On error the engine holds a partial
    /// store and no write is still running: the caller discards it.
    public func restore(into engine: any StorageEngine, checksumVerified: Bool = false,
                        batchBytes: Int = 4 << 20) throws -> RestoreSummary {
        if !checksumVerified { try verifyChecksum() }
        var summary = RestoreSummary()
        var batch = WriteBatch()
        let writer = PipelinedBatchWriter(engine: engine)
        defer { writer.drain() }
        func put(_ k: [UInt8], _ v: [UInt8]) throws {
            batch.put(k, v)
            if batch.byteCount >= batchBytes {
                try writer.submit(batch)
                batch = WriteBatch()
            }
        }
        var lastMain: Int64 = 0
        var compact: Int64 = -1, finished: Int64 = -1, consistentIndex: UInt64 = 0
        var authEnabled = false
        var authRevision: UInt64?
        var users: [Authpb_User] = []
        var roles: [Authpb_Role] = []

        try forEachBucket { name, bucket, visited in
            switch name {
            case EtcdLayout.keyBucket:
                try reader.forEach(bucket, visited: visited) { e in
                    let entry = try engineEntry(e.key, e.value, lastMain: &lastMain)
                    try put(entry.key, entry.value)
                    summary.versions += 1
                }
            case EtcdLayout.metaBucket:
                try reader.forEach(bucket, visited: visited) { e in
                    switch e.key {
                    case EtcdLayout.consistentIndexKey:
                        guard e.value.count == 8 else { throw bad("meta consistent_index of \(e.value.count) bytes") }
                        consistentIndex = EtcdLayout.loadBigEndian(e.value, 0)
                    case EtcdLayout.scheduledCompactKey, EtcdLayout.finishedCompactKey:
                        guard let (rev, _) = EtcdLayout.parseRevisionKey(e.value), rev.main >= 0 else {
                            throw bad("meta \(String(decoding: e.key, as: UTF8.self)) is not a revision")
                        }
                        if e.key == EtcdLayout.scheduledCompactKey { compact = rev.main } else { finished = rev.main }
                    default:
                        break   // 3.5+: term, confState, storageVersion
                    }
                }
            case EtcdLayout.leaseBucket:
                try reader.forEach(bucket, visited: visited) { e in
                    guard e.key.count == 8, let lease = LeaseRecord(decoding: e.value),
                          lease.id == Int64(bitPattern: EtcdLayout.loadBigEndian(e.key, 0)) else {
                        throw bad("lease record \(e.key.count)-byte key does not hold a leasepb.Lease of that ID")
                    }
                    guard lease.ttl >= 0, lease.ttl <= 9_000_000_000 else { throw bad("lease \(lease.id) has TTL \(lease.ttl)") }
                    try put(ServerRecords.leaseKey(lease.id), ServerRecords.leaseTTL(lease.ttl))
                    summary.leases += 1
                }
            case EtcdLayout.authBucket:
                try reader.forEach(bucket, visited: visited) { e in
                    if e.key == EtcdLayout.authEnabledKey { authEnabled = e.value == [1] }
                    if e.key == EtcdLayout.authRevisionKey {
                        guard e.value.count == 8 else { throw bad("auth authRevision of \(e.value.count) bytes") }
                        authRevision = EtcdLayout.loadBigEndian(e.value, 0)
                    }
                }
            case EtcdLayout.authUsersBucket:
                try reader.forEach(bucket, visited: visited) { e in
                    do { users.append(try Authpb_User(serializedBytes: e.value)) } catch {
                        throw bad("authUsers record \(String(decoding: e.key, as: UTF8.self)) is not an authpb.User")
                    }
                }
            case EtcdLayout.authRolesBucket:
                try reader.forEach(bucket, visited: visited) { e in
                    do { roles.append(try Authpb_Role(serializedBytes: e.value)) } catch {
                        throw bad("authRoles record \(String(decoding: e.key, as: UTF8.self)) is not an authpb.Role")
                    }
                }
            case EtcdLayout.alarmBucket:
                // etcd's alarm store: key = the marshalled etcdserverpb.AlarmMember, empty value
                // (etcd refuses to start on a key that does not unmarshal).
                try reader.forEach(bucket, visited: visited) { e in
                    guard e.nested == nil, let alarm = try? Etcdserverpb_AlarmMember(serializedBytes: e.key) else {
                        throw bad("alarm record of \(e.key.count) bytes is not an etcdserverpb.AlarmMember")
                    }
                    // Stored canonical (a fresh message: no unknown fields kept).
                    var canonical = Etcdserverpb_AlarmMember()
                    canonical.memberID = alarm.memberID
                    canonical.alarm = alarm.alarm
                    if canonical.alarm != .none && !summary.alarms.contains(canonical) {
                        summary.alarms.append(canonical)
                        try put(ServerRecords.alarmPrefix + (try canonical.serializedBytes() as [UInt8]), [])
                    }
                }
            default:
                break   // members, members_removed, cluster; unknown buckets of later versions
            }
        }

        var auth = try authState(enabled: authEnabled, users: users, roles: roles)
        if let authRevision, authRevision >= 1 { auth = auth.withRevision(authRevision) }
        if auth != AuthState() { try put(ServerRecords.authKey, auth.encoded()) }
        summary.users = users.count
        summary.roles = roles.count
        let meta = SnapshotFormat.Meta(currentRevision: max(lastMain, compact, 1), compactRevision: compact,
                                       finishedCompactRevision: finished, appliedIndex: max(consistentIndex, 1))
        for (k, v) in meta.engineEntries { try put(k, v) }
        summary.meta = meta
        try writer.finish(last: batch)
        return summary
    }

    private func bad(_ message: String) -> EtcdSnapshotError {
        EtcdSnapshotError("snapshot \(path): \(message)")
    }

    /// The engine entry of one record of the `key` bucket, checked; sets `lastMain` to its
    /// main revision.
    private func engineEntry(_ k: [UInt8], _ v: [UInt8], lastMain: inout Int64) throws -> (key: [UInt8], value: [UInt8]) {
        guard let (rev, tombstone) = EtcdLayout.parseRevisionKey(k), rev.main > 0, rev.sub >= 0 else {
            throw bad("key of \(k.count) bytes in bucket \"key\" is not a revision")
        }
        lastMain = rev.main
        return try v.withUnsafeBytes { b in
            guard let kv = KeyValueRecord(decoding: b) else {
                throw bad("record \(rev) in bucket \"key\" is not an mvccpb.KeyValue")
            }
            guard !kv.key.isEmpty else { throw bad("record \(rev) has an empty key") }
            if !tombstone {
                guard kv.modRevision == rev.main, kv.createRevision > 0, kv.createRevision <= rev.main,
                      kv.version > 0, kv.lease >= 0 else {
                    throw bad("record \(rev): create \(kv.createRevision), mod \(kv.modRevision), version \(kv.version), lease \(kv.lease) are inconsistent")
                }
            }
            return SnapshotFormat.engineEntry(revision: rev, isTombstone: tombstone,
                                              key: UnsafeRawBufferPointer(rebasing: b[kv.key]),
                                              value: UnsafeRawBufferPointer(rebasing: b[kv.value]),
                                              createRevision: kv.createRevision, version: kv.version, lease: kv.lease)
        }
    }

    /// Rebuilds the auth state through its own mutations (so every invariant is checked).
    private func authState(enabled: Bool, users: [Authpb_User], roles: [Authpb_Role]) throws -> AuthState {
        var s = AuthState()
        func apply(_ m: AuthState.Mutation) throws {
            do { s = try s.applying(m) } catch { throw bad("auth data rejected (\(m)): \(error)") }
        }
        for r in roles {
            let name = String(decoding: r.name, as: UTF8.self)
            try apply(.roleAdd(name: name))
            for p in r.keyPermission {
                guard let kind = AuthState.Permission.Kind(rawValue: p.permType.rawValue) else {
                    throw bad("role \(name) has permission type \(p.permType.rawValue)")
                }
                try apply(.roleGrantPermission(role: name, permission: .init(kind: kind, key: Array(p.key), rangeEnd: Array(p.rangeEnd))))
            }
        }
        for u in users {
            let name = String(decoding: u.name, as: UTF8.self)
            try apply(.userAdd(name: name, passwordHash: String(decoding: u.password, as: UTF8.self), noPassword: u.options.noPassword))
            for role in u.roles { try apply(.userGrantRole(user: name, role: role)) }
        }
        if enabled { try apply(.enable) }
        return s
    }
}
