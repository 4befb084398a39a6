import EngineAPI
import EtcdServer
import MVCC
import WatchHub

/// The /metrics page in Prometheus text format 0.0.4, generated from the server's current
/// numbers at each scrape. Names are etcd's where they mean the same thing; rusd_* are rusd's
/// own (engine and group-commit numbers).
///
/// etcd_disk_wal_fsync_duration_seconds and etcd_disk_backend_commit_duration_seconds both
/// observe the same thing in rusd: the synced engine write of each group commit (rusd has no
/// separate WAL and backend; that one write is both the log append and the state commit).
/// The gRPC families (grpc_server_*, etcd_network_client_grpc_*, etcd_server_client_requests_total)
/// come from `GRPCServerMetrics` when the transport counts calls; process_* and os_fd_* from
/// `ProcessMetrics`; MVCC, proposal and lease counts from `ServerCounters`.
///
/// Families that are constant in a single-member etcd are constant here too (has_leader 1,
/// leader changes 1, heartbeat send failures 0, snapshot apply in progress 0, the .snap.db
/// histograms that only a follower receiving a leader's snapshot observes). docs/metrics.md
/// lists every family of etcd 3.4 with present / absent-and-why.
struct PrometheusMetrics {
    let server: EtcdServer
    let member: LocalMember
    var grpc: GRPCServerMetrics?
    var watch: WatchHub?

    func text() -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { out += "\(name)\(labels) \(value)\n" }
        }
        func one(_ name: String, _ type: String, _ help: String, _ value: String, labels: String = "") {
            family(name, type, help, [(labels, value)])
        }
        let read = server.store.read()
        let stats = try? server.store.engine.stats()
        let engine = Self.escape(server.store.engine.name)

        one("etcd_server_has_leader", "gauge", "Whether or not a leader exists. 1 is existence, 0 is not.", "1")
        one("etcd_server_is_leader", "gauge", "Whether or not this member is a leader. 1 if is, 0 otherwise.", "1")
        one("etcd_server_is_learner", "gauge", "Whether or not this member is a learner. 1 if is, 0 otherwise.", "0")
        one("etcd_server_leader_changes_seen_total", "counter", "The number of leader changes seen.", "1")
        one("etcd_server_id", "gauge", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", "1",
            labels: "{server_id=\"\(String(server.config.memberID, radix: 16))\"}")
        one("etcd_server_version", "gauge", "Which version is running. 1 for 'server_version' label with current version.", "1",
            labels: "{server_version=\"\(Self.escape(ReportedVersion.server))\"}")
        one("etcd_cluster_version", "gauge", "Which version is running. 1 for 'cluster_version' label with current cluster version", "1",
            labels: "{cluster_version=\"\(Self.escape(Self.majorMinor(ReportedVersion.cluster)))\"}")
        one("etcd_server_proposals_committed_total", "gauge", "The total number of consensus proposals committed.", "\(read.appliedIndex)")
        one("etcd_server_proposals_applied_total", "gauge", "The total number of consensus proposals applied.", "\(read.appliedIndex)")
        one("etcd_server_proposals_pending", "gauge", "The current number of pending proposals to commit.", "0")
        let counts = server.counters.snapshot
        one("etcd_server_proposals_failed_total", "counter", "The total number of failed proposals seen.", "\(counts.proposalsFailed)")
        one("etcd_server_slow_apply_total", "counter", "The total number of slow apply requests (likely overloaded from slow disk).",
            "\(counts.slowApplies)")
        // rusd serves linearizable reads from the committed state without a read index: none
        // can fail or lag (a single-member etcd's counts stay 0 too unless its loop stalls).
        one("etcd_server_slow_read_indexes_total", "counter",
            "The total number of pending read indexes not in sync with leader's or timed out read index requests.", "0")
        one("etcd_server_read_indexes_failed_total", "counter", "The total number of failed read indexes seen.", "0")
        one("etcd_server_heartbeat_send_failures_total", "counter",
            "The total number of leader heartbeat send failures (likely overloaded from slow disk).", "0")
        one("etcd_server_snapshot_apply_in_progress_total", "gauge", "1 if the server is applying the incoming snapshot. 0 if none.", "0")
        one("etcd_server_learner_promote_successes", "counter",
            "The total number of successful learner promotions while this member is leader.", "0")
        one("rusd_server_swift_version", "gauge",
            "Which Swift version rusd was built with. 1 for 'server_swift_version' label with current version (etcd: etcd_server_go_version).",
            "1", labels: "{server_swift_version=\"\(Self.swiftVersion)\"}")
        for prefix in ["etcd_mvcc", "etcd_debugging_mvcc"] {   // 3.4 exports both names
            one("\(prefix)_range_total", "counter", "Total number of ranges seen by this member.", "\(counts.ranges)")
            one("\(prefix)_put_total", "counter", "Total number of puts seen by this member.", "\(counts.puts)")
            one("\(prefix)_delete_total", "counter", "Total number of deletes seen by this member.", "\(counts.deletes)")
            one("\(prefix)_txn_total", "counter", "Total number of txns seen by this member.", "\(counts.txns)")
        }
        one("etcd_debugging_mvcc_total_put_size_in_bytes", "gauge", "The total size of put kv pairs seen by this member.", "\(counts.putBytes)")
        one("etcd_debugging_lease_granted_total", "counter", "The total number of granted leases.", "\(counts.leasesGranted)")
        one("etcd_debugging_lease_revoked_total", "counter", "The total number of revoked leases.", "\(counts.leasesRevoked)")
        one("etcd_debugging_lease_renewed_total", "counter", "The number of renewed leases seen by the leader.", "\(counts.leasesRenewed)")
        one("etcd_debugging_server_lease_expired_total", "counter", "The total number of expired leases.", "\(counts.leasesExpired)")
        out += Self.histogram("etcd_debugging_lease_ttl_total", "Bucketed histogram of lease TTLs.", counts.leaseTTLs)
        let compaction = server.store.compactionStats
        one("etcd_debugging_mvcc_db_compaction_keys_total", "counter", "Total number of db keys compacted.", "\(compaction.keysCompacted)")
        out += Self.histogram("etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
                              "Bucketed histogram of index compaction pause duration.", compaction.indexPauseMilliseconds.snapshot)
        out += Self.histogram("etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
                              "Bucketed histogram of db compaction pause duration.", compaction.dbPauseMilliseconds.snapshot)
        out += Self.histogram("etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
                              "Bucketed histogram of db compaction total duration.", compaction.totalMilliseconds.snapshot)
        let c = server.counters
        let health = c.healthCheckCounts
        one("etcd_server_health_success", "counter", "The total number of successful health checks", "\(health.healthy)")
        one("etcd_server_health_failures", "counter", "The total number of failed health checks", "\(health.unhealthy)")
        out += Self.histogram("etcd_mvcc_hash_duration_seconds", "The latency distribution of storage hash operation.", c.hashSeconds.snapshot)
        out += Self.histogram("etcd_mvcc_hash_rev_duration_seconds", "The latency distribution of storage hash by revision operation.",
                              c.hashRevisionSeconds.snapshot)
        out += Self.histogram("etcd_disk_backend_defrag_duration_seconds", "The latency distribution of backend defragmentation.",
                              c.defragSeconds.snapshot)
        one("etcd_disk_defrag_inflight", "gauge", "Whether or not defrag is active on the member. 1 means active, 0 means not.",
            c.defragsInFlight > 0 ? "1" : "0")
        out += Self.histogram("etcd_disk_backend_snapshot_duration_seconds", "The latency distribution of backend snapshots.",
                              c.snapshotSeconds.snapshot)
        one("etcd_debugging_auth_revision", "gauge", "The current revision of auth store.", "\(server.auth.state.revision)")
        // Observed only by a follower that receives a leader's snapshot: never in one member.
        out += Self.emptyHistogram("etcd_snap_db_fsync_duration_seconds", "The latency distributions of fsyncing .snap.db file",
                                   bounds: (0..<14).map { 0.001 * Double(1 << $0) })
        out += Self.emptyHistogram("etcd_snap_db_save_total_duration_seconds", "The total latency distributions of v3 snapshot save",
                                   bounds: (0..<10).map { 0.1 * Double(1 << $0) })
        one("etcd_server_quota_backend_bytes", "gauge", "Current backend storage quota size in bytes.", "\(member.quotaBackendBytes)")
        one("etcd_debugging_mvcc_keys_total", "gauge", "Total number of keys.", "\(read.indexedKeyCount)")
        one("etcd_debugging_mvcc_current_revision", "gauge", "The current revision of store.", "\(read.revision)")
        one("etcd_debugging_mvcc_compact_revision", "gauge", "The revision of the last compaction in store.", "\(read.compactRevision)")
        if let watch {
            let gauges = watch.gaugeValues
            one("etcd_debugging_mvcc_watch_stream_total", "gauge", "Total number of watch streams.", "\(gauges.streams)")
            one("etcd_debugging_mvcc_watcher_total", "gauge", "Total number of watchers.", "\(gauges.watchers)")
            one("etcd_debugging_mvcc_slow_watcher_total", "gauge", "Total number of unsynced slow watchers.", "\(gauges.slow)")
        }
        if let stats {
            one("etcd_mvcc_db_total_size_in_bytes", "gauge", "Total size of the underlying database physically allocated in bytes.", "\(stats.diskBytes)")
            one("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge", "Total size of the underlying database logically in use in bytes.", "\(stats.liveBytes)")
            one("etcd_debugging_mvcc_db_total_size_in_bytes", "gauge", "Total size of the underlying database physically allocated in bytes.",
                "\(stats.diskBytes)")
            // rusd's log append and state commit are one engine write (see the fsync histogram).
            one("etcd_disk_wal_write_bytes_total", "gauge", "Total number of bytes written in WAL. (rusd: bytes the storage engine wrote since start.)",
                "\(stats.bytesWrittenSinceOpen)")
            one("rusd_engine_bytes_written_total", "counter", "Bytes the storage engine wrote to its files since start (WAL, tables, pages).",
                "\(stats.bytesWrittenSinceOpen)", labels: "{engine=\"\(engine)\"}")
            one("rusd_engine_disk_bytes", "gauge", "Bytes of the storage engine's files on disk.", "\(stats.diskBytes)", labels: "{engine=\"\(engine)\"}")
            one("rusd_engine_live_bytes", "gauge", "Bytes of live keys and values in the storage engine.", "\(stats.liveBytes)", labels: "{engine=\"\(engine)\"}")
            if let entries = stats.entryCount {
                one("rusd_engine_entries", "gauge", "Live entries in the storage engine.", "\(entries)", labels: "{engine=\"\(engine)\"}")
            }
            if !stats.details.isEmpty {
                family("rusd_engine_detail", "gauge", "Engine-specific numbers (flushes, compactions, level sizes, stalls), by name.",
                       stats.details.sorted { $0.key < $1.key }.map { ("{engine=\"\(engine)\",name=\"\(Self.escape($0.key))\"}", Self.number($0.value)) })
            }
        }
        one("rusd_server_group_commits_total", "counter", "Synced engine writes of the applier (each commits a group of log entries).",
            "\(server.groupCommitCount)")
        family("rusd_server_alarms", "gauge", "Active alarms by type.",
               ["NOSPACE", "CORRUPT"].map { name in
                   ("{alarm=\"\(name)\"}", "\(member.alarms.get().filter { AlarmList.name($0.alarm) == name }.count)")
               })
        let commits = server.commitDurations
        out += Self.histogram("etcd_disk_wal_fsync_duration_seconds",
                              "The latency distributions of fsync called by WAL. (rusd: the synced engine write of each group commit, "
                              + "the same observations as etcd_disk_backend_commit_duration_seconds.)", commits)
        out += Self.histogram("etcd_disk_backend_commit_duration_seconds",
                              "The latency distributions of commit called by backend. (rusd: the synced engine write of each group commit, "
                              + "the same observations as etcd_disk_wal_fsync_duration_seconds.)", commits)
        if let grpc { out += grpc.text() }
        out += ProcessMetrics.read().text()
        return out
    }

    static func histogram(_ name: String, _ help: String, _ h: ValueHistogram.Snapshot) -> String {
        histogram(name, help, bounds: h.bounds, cumulativeCounts: h.cumulativeCounts, count: h.count, sum: h.sum)
    }

    /// A histogram family with no observations.
    static func emptyHistogram(_ name: String, _ help: String, bounds: [Double]) -> String {
        histogram(name, help, bounds: bounds, cumulativeCounts: bounds.map { _ in 0 }, count: 0, sum: 0)
    }

    /// The Swift language version rusd was compiled in.
    static var swiftVersion: String {
        #if swift(>=6.3)
        "6.3"
        #elseif swift(>=6.2)
        "6.2"
        #elseif swift(>=6.1)
        "6.1"
        #else
        "6.0"
        #endif
    }

    /// A histogram family from its upper bounds, cumulative counts (same order), count and sum.
    static func histogram(_ name: String, _ help: String, bounds: [Double], cumulativeCounts: [UInt64],
                          count: UInt64, sum: Double) -> String {
        "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
            + histogramSamples(name, labels: "", bounds: bounds, cumulativeCounts: cumulativeCounts, count: count, sum: sum)
    }

    /// One histogram's sample lines (no HELP/TYPE), `labels` (`a="x",b="y"`, may be empty)
    /// on every line before `le`.
    static func histogramSamples(_ name: String, labels: String, _ h: ValueHistogram.Snapshot) -> String {
        histogramSamples(name, labels: labels, bounds: h.bounds, cumulativeCounts: h.cumulativeCounts, count: h.count, sum: h.sum)
    }

    static func histogramSamples(_ name: String, labels: String, bounds: [Double], cumulativeCounts: [UInt64],
                                 count: UInt64, sum: Double) -> String {
        let prefix = labels.isEmpty ? "" : labels + ","
        let own = labels.isEmpty ? "" : "{\(labels)}"
        var out = ""
        for (bound, c) in zip(bounds, cumulativeCounts) {
            out += "\(name)_bucket{\(prefix)le=\"\(number(bound))\"} \(c)\n"
        }
        out += "\(name)_bucket{\(prefix)le=\"+Inf\"} \(count)\n"
        out += "\(name)_sum\(own) \(number(sum))\n"
        out += "\(name)_count\(own) \(count)\n"
        return out
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return "\(Int64(v))" }
        return "\(v)"
    }

    static func majorMinor(_ version: String) -> String {
        version.split(separator: ".").prefix(2).joined(separator: ".")
    }
}
