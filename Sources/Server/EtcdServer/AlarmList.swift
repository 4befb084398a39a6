import EngineAPI
import EtcdProto
import MVCC
import Synchronization

/// The alarms raised in the cluster (etcd's alarm store): NOSPACE when a member's backend
/// exceeds its quota, CORRUPT for a failed consistency check.
///
/// Persisted as etcd persists them: one server record per raised alarm, keyed by the marshalled
/// `etcdserverpb.AlarmMember` (`c` `alarm/` + those bytes → empty value; etcd's `alarm` bucket
/// has the same keys), written through the ordered log (`ApplyRequest.alarm`), so every member
/// of a cluster applies the same changes in the same order, a restart reloads them, and a
/// snapshot carries them. A restore of a snapshot whose `alarm` bucket holds alarms starts with
/// them raised, as etcd does.
///
/// Thread-safety: reads from any thread; `apply` only from the applier. `activate` and
/// `deactivate` change the in-memory list alone (the applier and tests use them).
public final class AlarmList: Sendable {
    /// Engine key prefix of the alarm records (server namespace `c`).
    public static let recordPrefix: [UInt8] = [StorageLayout.clusterPrefix] + Array("alarm/".utf8)
    /// Just past every alarm record ('/' + 1 is '0').
    static let recordsEnd: [UInt8] = [StorageLayout.clusterPrefix] + Array("alarm0".utf8)

    private let active = Mutex<[Etcdserverpb_AlarmMember]>([])

    public init() {}

    /// Every active alarm, or those of `type` (`.none`: all), in activation order (after a
    /// restart: in the order of their records).
    public func get(_ type: Etcdserverpb_AlarmType = .none) -> [Etcdserverpb_AlarmMember] {
        active.withLock { list in type == .none ? list : list.filter { $0.alarm == type } }
    }

    /// Raises `type` for `memberID` in memory. Returns the alarm, or nil for `.none`. Idempotent.
    @discardableResult
    public func activate(_ type: Etcdserverpb_AlarmType, memberID: UInt64) -> Etcdserverpb_AlarmMember? {
        activating(type, memberID: memberID).map { $0.alarm }
    }

    /// Clears `type` for `memberID` in memory. Returns the cleared alarm, nil when it was not raised.
    @discardableResult
    public func deactivate(_ type: Etcdserverpb_AlarmType, memberID: UInt64) -> Etcdserverpb_AlarmMember? {
        active.withLock { list in
            guard let i = list.firstIndex(where: { $0.alarm == type && $0.memberID == memberID }) else { return nil }
            return list.remove(at: i)
        }
    }

    public var isEmpty: Bool { active.withLock { $0.isEmpty } }

    /// Whether NOSPACE is raised (writes that add data must then fail).
    public var noSpace: Bool { active.withLock { $0.contains { $0.alarm == .nospace } } }

    /// The alarm and whether it was newly raised; nil for `.none`.
    private func activating(_ type: Etcdserverpb_AlarmType, memberID: UInt64) -> (alarm: Etcdserverpb_AlarmMember, new: Bool)? {
        guard type != .none else { return nil }
        var m = Etcdserverpb_AlarmMember()
        m.memberID = memberID
        m.alarm = type
        let new = active.withLock { list in
            if list.contains(m) { return false }
            list.append(m)
            return true
        }
        return (m, new)
    }

    /// The engine key of `alarm`'s record: the prefix and the marshalled AlarmMember.
    /// (Marshalling two varint fields cannot fail: proto3 has no required fields.)
    public static func recordKey(_ alarm: Etcdserverpb_AlarmMember) -> [UInt8] {
        recordPrefix + ((try? alarm.serializedBytes() as [UInt8]) ?? [])
    }

    /// The alarm whose record key is `key`; nil unless `key` is exactly `recordKey` of it
    /// (a prefix, then the two fields as protobuf writes them, nothing else).
    public static func alarm(fromRecordKey key: [UInt8]) -> Etcdserverpb_AlarmMember? {
        guard key.count > recordPrefix.count,
              let decoded = try? Etcdserverpb_AlarmMember(serializedBytes: Array(key[recordPrefix.count...])) else { return nil }
        var m = Etcdserverpb_AlarmMember()
        m.memberID = decoded.memberID
        m.alarm = decoded.alarm
        return recordKey(m) == key ? m : nil
    }

    /// Loads the persisted alarms. A record that does not decode is corruption (etcd refuses to
    /// start on one too).
    func reload(from store: MVCCStore) throws(EtcdError) {
        var loaded: [Etcdserverpb_AlarmMember] = []
        do {
            try store.engine.readView().scan(KeyRange(start: Self.recordPrefix, end: Self.recordsEnd), reverse: false, limit: nil) { k, _ in
                guard let m = Self.alarm(fromRecordKey: Array(k)),
                      m.alarm != .none,
                      !loaded.contains(m) else {
                    throw EtcdError(.dataLoss, "etcdserver: corrupt alarm record of \(k.count) bytes in \(store.engine.directory)")
                }
                loaded.append(m)
                return true
            }
        } catch let e as EtcdError {
            throw e
        } catch {
            throw EtcdError(.unknown, "\(error)")
        }
        active.withLock { $0 = loaded }
    }

    /// Applies an ACTIVATE or DEACTIVATE (applier only), as etcd's applier answers it: the
    /// alarm changed, or nothing (already raised: the alarm; not raised, or `.none`: nothing).
    /// A change stages its record in the current group.
    func apply(_ r: Etcdserverpb_AlarmRequest, writer: StoreWriter) -> Etcdserverpb_AlarmResponse {
        var resp = Etcdserverpb_AlarmResponse()
        switch r.action {
        case .activate:
            guard let raised = activating(r.alarm, memberID: r.memberID) else { break }
            if raised.new { writer.stageAuxiliaryPut(Self.recordKey(raised.alarm), []) }
            resp.alarms = [raised.alarm]
        case .deactivate:
            guard let m = deactivate(r.alarm, memberID: r.memberID) else { break }
            writer.stageAuxiliaryDelete(Self.recordKey(m))
            resp.alarms = [m]
        case .get:
            resp.alarms = get(r.alarm)
        case .UNRECOGNIZED:
            break
        }
        return resp
    }
}
