import MVCC

/// etcd 3.4's backend layout (the bbolt database in `member/snap/db` and in every snapshot):
///
/// | bucket            | key                                   | value                                  |
/// |-------------------|---------------------------------------|----------------------------------------|
/// | `key`             | main(8 BE) `_` sub(8 BE), + `t` for a deletion | mvccpb.KeyValue (a deletion: the key only) |
/// | `meta`            | `consistent_index`                    | applied raft index, 8 bytes BE         |
/// |                   | `scheduledCompactRev`, `finishedCompactRev` | a 17-byte revision key (sub 0)   |
/// | `lease`           | lease ID, 8 bytes BE                  | leasepb.Lease {ID, TTL, RemainingTTL}  |
/// | `auth`            | `authEnabled` → 0x01/0x00, `authRevision` → 8 bytes BE |                       |
/// | `authUsers`       | user name                             | authpb.User                            |
/// | `authRoles`       | role name                             | authpb.Role                            |
/// | `members`         | member ID in hex                      | member JSON                            |
/// | `members_removed` | member ID in hex                      | `removed`                              |
/// | `cluster`         | `clusterVersion`                      | e.g. `3.4.0`                           |
/// | `alarm`           | alarm member + type                   | (empty)                                |
///
/// etcd 3.5 adds `meta` keys (`term`, `confState`, `storageVersion` in 3.6) and keeps the rest;
/// a reader here ignores keys and buckets it does not know.
enum EtcdLayout {
    static let keyBucket = bytes("key")
    static let metaBucket = bytes("meta")
    static let leaseBucket = bytes("lease")
    static let authBucket = bytes("auth")
    static let authUsersBucket = bytes("authUsers")
    static let authRolesBucket = bytes("authRoles")
    static let membersBucket = bytes("members")
    static let membersRemovedBucket = bytes("members_removed")
    static let clusterBucket = bytes("cluster")
    static let alarmBucket = bytes("alarm")

    static let consistentIndexKey = bytes("consistent_index")
    static let scheduledCompactKey = bytes("scheduledCompactRev")
    static let finishedCompactKey = bytes("finishedCompactRev")
    static let authEnabledKey = bytes("authEnabled")
    static let authRevisionKey = bytes("authRevision")
    static let clusterVersionKey = bytes("clusterVersion")
    /// The cluster version a snapshot of rusd announces (the etcd API it serves).
    static let clusterVersion = bytes("3.4.0")

    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// etcd's revision key: 17 bytes, or 18 with the deletion marker `t`.
    static func revisionKey(_ rev: Revision, tombstone: Bool) -> [UInt8] {
        var k: [UInt8] = []
        k.reserveCapacity(18)
        appendRevisionKey(&k, rev, tombstone: tombstone)
        return k
    }

    static func appendRevisionKey(_ k: inout [UInt8], _ rev: Revision, tombstone: Bool) {
        appendBigEndian(&k, UInt64(bitPattern: rev.main))
        k.append(UInt8(ascii: "_"))
        appendBigEndian(&k, UInt64(bitPattern: rev.sub))
        if tombstone { k.append(UInt8(ascii: "t")) }
    }

    /// Bytes of a revision key.
    static func revisionKeyCount(tombstone: Bool) -> Int { tombstone ? 18 : 17 }

    /// Parses a revision key; nil when it is not one.
    static func parseRevisionKey(_ k: [UInt8]) -> (Revision, tombstone: Bool)? {
        guard k.count == 17 || (k.count == 18 && k[17] == UInt8(ascii: "t")), k[8] == UInt8(ascii: "_") else { return nil }
        return (Revision(main: Int64(bitPattern: loadBigEndian(k, 0)), sub: Int64(bitPattern: loadBigEndian(k, 9))), k.count == 18)
    }

    static func appendBigEndian(_ out: inout [UInt8], _ v: UInt64) {
        withUnsafeBytes(of: v.bigEndian) { out.append(contentsOf: $0) }
    }

    /// Big-endian UInt64 at `offset`; the caller checked the bounds.
    static func loadBigEndian(_ b: [UInt8], _ offset: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(b[offset + i]) }
        return v
    }
}

/// rusd's own server records that a snapshot carries (written by EtcdServer's `Lessor` and
/// `AuthStore` and by `StoreBootstrap`; these mirror those layouts and must change with them).
enum ServerRecords {
    /// `l` + lease ID (8 bytes BE) → granted TTL (8 bytes LE).
    static let leasePrefix = StorageLayout.leasePrefix
    /// `a` + `state` → `AuthState.encoded()`.
    static let authKey = [StorageLayout.authPrefix] + Array("state".utf8)
    /// `c` + `member/` + member ID (8 bytes BE) → member JSON.
    static let memberPrefix = [StorageLayout.clusterPrefix] + Array("member/".utf8)
    /// `c` + `alarm/` + marshalled etcdserverpb.AlarmMember → empty (EtcdServer's `AlarmList`).
    static let alarmPrefix = [StorageLayout.clusterPrefix] + Array("alarm/".utf8)

    static func leaseKey(_ id: Int64) -> [UInt8] {
        var k = [leasePrefix]
        EtcdLayout.appendBigEndian(&k, UInt64(bitPattern: id))
        return k
    }

    static func leaseTTL(_ ttl: Int64) -> [UInt8] {
        withUnsafeBytes(of: UInt64(bitPattern: ttl).littleEndian) { Array($0) }
    }
}

/// leasepb.Lease {int64 ID = 1; int64 TTL = 2; int64 RemainingTTL = 3}, by hand (three varints).
struct LeaseRecord: Equatable {
    var id: Int64
    var ttl: Int64

    var encoded: [UInt8] {
        var out: [UInt8] = []
        for (field, v) in [(UInt64(1), id), (2, ttl)] where v != 0 {
            varint(&out, field << 3)
            varint(&out, UInt64(bitPattern: v))
        }
        return out
    }

    private func varint(_ out: inout [UInt8], _ value: UInt64) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    /// Decodes the message; unknown varint and length-delimited fields are skipped; nil when
    /// the bytes are not a valid message.
    init?(decoding b: [UInt8]) {
        var i = 0
        func varint() -> UInt64? {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while i < b.count, shift < 64 {
                let byte = b[i]
                i += 1
                v |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { return v }
                shift += 7
            }
            return nil
        }
        var id: Int64 = 0, ttl: Int64 = 0
        while i < b.count {
            guard let tag = varint() else { return nil }
            switch tag & 7 {
            case 0:
                guard let v = varint() else { return nil }
                if tag >> 3 == 1 { id = Int64(bitPattern: v) } else if tag >> 3 == 2 { ttl = Int64(bitPattern: v) }
            case 2:
                guard let n = varint(), n <= UInt64(b.count - i) else { return nil }
                i += Int(n)
            default:
                return nil
            }
        }
        self.id = id
        self.ttl = ttl
    }

    init(id: Int64, ttl: Int64) {
        self.id = id
        self.ttl = ttl
    }
}
