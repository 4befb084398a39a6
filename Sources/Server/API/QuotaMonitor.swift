import Dispatch
import EtcdProto
import EtcdServer

/// Raises NOSPACE when the store grows past --quota-backend-bytes: checks the engine's disk
/// size once per `interval` (engine stats are cheap at that rate). Like etcd, the alarm stays
/// until it is disarmed (`etcdctl alarm disarm`), even if compaction and defragmentation shrank
/// the store; a disarm while still over quota is followed by a new alarm at the next check.
/// Difference from etcd: etcd also checks each write's size against the quota before applying
/// it; rusd's check is periodic, so a burst may overshoot the quota by up to one interval of
/// writes before writes are refused.
///
/// `@unchecked Sendable`: the timer is configured in `init` only; `cancel` is thread-safe.
public final class QuotaMonitor: @unchecked Sendable {
    private let timer: any DispatchSourceTimer

    public init(server: EtcdServer, member: LocalMember, interval: DispatchTimeInterval = .seconds(1)) {
        timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "rusd.quota"))
        timer.setEventHandler {
            QuotaMonitor.check(server: server, member: member)
        }
        timer.schedule(deadline: .now(), repeating: interval)
        timer.resume()
    }

    /// One check: raises NOSPACE when the engine's files exceed the quota.
    public static func check(server: EtcdServer, member: LocalMember) {
        guard let stats = try? server.store.engine.stats() else { return }
        if Int64(clamping: stats.diskBytes) > member.quotaBackendBytes && !server.alarms.noSpace {
            var r = Etcdserverpb_AlarmRequest()
            r.action = .activate
            r.alarm = .nospace
            r.memberID = server.config.memberID
            // Through the log, as etcd raises it through raft: persisted, and raised on every
            // member. A check while one is in flight proposes it again; applying is idempotent.
            server.alarm(r) { _ in }
        }
    }

    public func stop() {
        timer.cancel()
    }
}
