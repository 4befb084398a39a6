#if canImport(Glibc)
import Glibc
#endif
import ClusterLog
import EngineAPI
import Engines
import EtcdSnapshot
import Logging
import MVCC
import Synchronization

/// Cluster mode, before the store is opened for serving (docs/cluster.md "Snapshots, trimming
/// and catch-up"): a member whose store is new, or whose next entry was trimmed from the shared
/// log, replaces its store with the newest snapshot kept in PostgreSQL and then tails the log
/// from the snapshot's applied index + 1 (EtcdServer starts from the store's applied index).
///
/// The snapshot is streamed into `member/snapshot.download`, checked (SHA-256, every page),
/// restored into `member/store.restoring` with the member's engine (`EtcdSnapshotRestore`, as
/// `rusd snapshot restore`), and only then swapped in: `store` → `store.old`, `store.restoring`
/// → `store`, directory synced, `store.old` deleted. A crash at any point leaves either the old
/// store, or no store (a new one: the next start restores again), never a partial one; the
/// leftovers are deleted at the next start.
enum SharedLogCatchUp {
    static func run(config: ServerConfig, dataDirectory: DataDirectory, logger: Logger) {
        // The same checks and messages as the start proper (SharedLogSetup), which follows.
        let url: SharedLogURL, position: SnapshotCatchUp.Position
        do throws(SharedLogError) {
            url = try SharedLogURL(config.sharedLog)
            _ = try SharedLogStart.open(url, logger: logger)
        } catch {
            fail("\(error)")
        }
        do {
            position = try SnapshotCatchUp.position(url, logger: logger)
        } catch {
            fail("cannot read the shared log's snapshots at \(url): \(error)")
        }
        let member = dataDirectory.memberPath, store = dataDirectory.storePath
        let restoring = member + "/store.restoring", old = member + "/store.old", download = member + "/snapshot.download"
        for leftover in [restoring, old] where PosixFiles.exists(leftover) { try? PosixFiles.removeTree(leftover) }
        unlink(download)

        let applied: UInt64
        do {
            let engine = try Engines.registry.open(config.engine, directory: store)
            defer { try? engine.close() }
            applied = try SnapshotFormat.meta(in: engine.readView()).appliedIndex
        } catch {
            fail("cannot open the \(config.engine) store: \(error)")
        }
        // A new store has applied nothing (0) or only its bootstrap entry (1).
        let next = max(applied, 1) + 1
        let behind = next <= position.trimmedThrough
        guard let newest = position.newest, behind || (applied <= 1 && newest.index > 1) else {
            if behind {
                fail("the shared log is trimmed through index \(position.trimmedThrough) and holds no snapshot; this member (applied index \(applied)) cannot catch up")
            }
            return
        }
        if behind && newest.index < position.trimmedThrough {
            fail("the shared log is trimmed through index \(position.trimmedThrough) but its newest snapshot covers only \(newest.index)")
        }
        logger.info("catching up from the shared log's newest snapshot", metadata: [
            "applied-index": "\(applied)", "trimmed-through": "\(position.trimmedThrough)",
            "snapshot-index": "\(newest.index)", "snapshot-bytes": "\(newest.bytes)"])
        let started = ContinuousClock.now
        do {
            let file = try DownloadFile(path: download)
            let got = try SnapshotCatchUp.downloadNewest(url, logger: logger, restart: { try file.truncate() },
                                                         sink: { try file.append($0) })
            try file.finish()
            let snapshot = try EtcdSnapshotFile(path: download)
            try snapshot.verifyChecksum()
            guard mkdir(restoring, 0o700) == 0 else { throw CatchUpFailure("cannot create \(restoring): \(String(cString: strerror(errno)))") }
            let engine = try Engines.registry.open(config.engine, directory: restoring, options: SnapshotCommand.restoreOptions(engine: config.engine))
            let summary: EtcdSnapshotFile.RestoreSummary
            do {
                summary = try snapshot.restore(into: engine, checksumVerified: true)
                try engine.close()
            } catch {
                try? engine.close()
                throw error
            }
            guard rename(store, old) == 0, rename(restoring, store) == 0 else {
                throw CatchUpFailure("cannot move the restored store into \(store): \(String(cString: strerror(errno)))")
            }
            try PosixFiles.fsyncPath(member)
            try? PosixFiles.removeTree(old)
            unlink(download)
            logger.info("restored the shared log's snapshot; tailing the log from its applied index", metadata: [
                "applied-index": "\(summary.meta.appliedIndex)", "revision": "\(summary.meta.currentRevision)",
                "snapshot-index": "\(got.index)", "bytes": "\(got.bytes)", "key-versions": "\(summary.versions)",
                "took": "\(ContinuousClock.now - started)"])
        } catch {
            for leftover in [restoring, old] where PosixFiles.exists(leftover) { try? PosixFiles.removeTree(leftover) }
            unlink(download)
            fail("cannot catch up from the shared log's snapshot: \(error)")
        }
    }
}

private struct CatchUpFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The snapshot file being downloaded: appended to chunk by chunk, synced at the end.
private final class DownloadFile: Sendable {
    let path: String
    private let fd: Mutex<Int32>

    init(path: String) throws {
        self.path = path
        let d = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard d >= 0 else { throw CatchUpFailure("cannot create \(path): \(String(cString: strerror(errno)))") }
        fd = Mutex(d)
    }

    deinit { fd.withLock { if $0 >= 0 { close($0) } } }

    func truncate() throws {
        try fd.withLock { d in
            guard ftruncate(d, 0) == 0, lseek(d, 0, SEEK_SET) == 0 else {
                throw CatchUpFailure("cannot truncate \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    func append(_ bytes: [UInt8]) throws {
        try fd.withLock { d in
            var done = 0
            while done < bytes.count {
                let n = bytes.withUnsafeBytes { b in b.baseAddress.map { write(d, $0 + done, b.count - done) } ?? 0 }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw CatchUpFailure("cannot write \(path): \(String(cString: strerror(errno)))") }
                done += n
            }
        }
    }

    func finish() throws {
        try fd.withLock { d in
            guard fsync(d) == 0 else { throw CatchUpFailure("cannot sync \(path): \(String(cString: strerror(errno)))") }
            close(d)
            d = -1
        }
    }
}
