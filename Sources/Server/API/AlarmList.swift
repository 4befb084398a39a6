import EtcdProto
import EtcdServer

/// etcd's text for alarms (the list itself, persisted through the ordered log, is
/// `EtcdServer.alarms`: see Sources/Server/EtcdServer/AlarmList.swift).
extension AlarmList {
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
