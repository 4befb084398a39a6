import EtcdProto
import Synchronization

/// The alarms raised on this member (etcd's alarm store): NOSPACE when the backend exceeds its
/// quota, CORRUPT for a failed consistency check. Kept in memory; NOSPACE is raised again after
/// a restart if the store is still over quota.
public final class AlarmList: Sendable {
    private let active = Mutex<[Etcdserverpb_AlarmMember]>([])

    public init() {}

    /// Every active alarm, or those of `type` (`.none`: all), in activation order.
    public func get(_ type: Etcdserverpb_AlarmType = .none) -> [Etcdserverpb_AlarmMember] {
        active.withLock { list in type == .none ? list : list.filter { $0.alarm == type } }
    }

    /// Raises `type` for `memberID`. Returns the alarm, or nil for `.none`. Idempotent.
    @discardableResult
    public func activate(_ type: Etcdserverpb_AlarmType, memberID: UInt64) -> Etcdserverpb_AlarmMember? {
        guard type != .none else { return nil }
        var m = Etcdserverpb_AlarmMember()
        m.memberID = memberID
        m.alarm = type
        active.withLock { list in
            if !list.contains(m) { list.append(m) }
        }
        return m
    }

    /// Clears `type` for `memberID`. Returns the cleared alarm, nil when it was not raised.
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

    /// etcd's text for an alarm in Status.errors and /health ("memberID:… alarm:NOSPACE ").
    public static func describe(_ m: Etcdserverpb_AlarmMember) -> String {
        "memberID:\(m.memberID) alarm:\(name(m.alarm)) "
    }

    public static func name(_ type: Etcdserverpb_AlarmType) -> String {
        switch type {
        case .none: return "NONE"
        case .nospace: return "NOSPACE"
        case .corrupt: return "CORRUPT"
        case .UNRECOGNIZED(let n): return "\(n)"
        }
    }
}
