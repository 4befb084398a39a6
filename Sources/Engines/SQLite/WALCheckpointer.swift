import CSQLite
import EngineAPI

/// The writer connection's checkpoint policy, in place of `wal_autocheckpoint` (which this
/// replaces: both are SQLite's WAL hook).
///
/// After each commit the leader calls `afterCommit`. Once the WAL holds `passivePages` frames
/// it runs a PASSIVE checkpoint (what wal_autocheckpoint=1000 does: copy what no reader still
/// needs into the database file, never wait). That alone starves under a steady mix of writes
/// and reads: the WAL is rewound to its start only when no reader is using it, and with
/// overlapping reads there always is one, so it grows without bound (73 MiB after 15 s of 64
/// writers and 2 readers). Past `restartPages` frames the leader therefore runs a RESTART
/// checkpoint, which waits up to `restartWaitMilliseconds` for the readers using the WAL to
/// finish (new readers read the database file once it is fully checkpointed), so that the next
/// commit starts the WAL from its beginning. A RESTART that times out (a long-lived view) is
/// tried again only after another `restartPages` frames. Only with `writerLock` held.
final class WALCheckpointer {
    /// Frames in the WAL after the last commit, set by the WAL hook (on the committing thread).
    private final class FrameCount { var frames: Int32 = 0 }

    private let connection: SQLiteConnection
    private let frameCount = FrameCount()
    let passivePages: Int32
    let restartPages: Int32
    let restartWaitMilliseconds: Int32
    let busyTimeoutMilliseconds: Int32
    private var nextRestartAt: Int32
    private(set) var passiveCheckpoints: UInt64 = 0
    private(set) var restarts: UInt64 = 0
    private(set) var restartsTimedOut: UInt64 = 0
    private(set) var failures: UInt64 = 0

    init(_ connection: SQLiteConnection, settings: SQLiteSettings) {
        self.connection = connection
        passivePages = Int32(clamping: settings.walAutocheckpointPages)
        restartPages = Int32(clamping: settings.walRestartPages)
        restartWaitMilliseconds = settings.walRestartWaitMilliseconds
        busyTimeoutMilliseconds = settings.busyTimeoutMilliseconds
        nextRestartAt = restartPages
        sqlite3_wal_hook(connection.handle, { context, _, _, frames in
            if let context { Unmanaged<FrameCount>.fromOpaque(context).takeUnretainedValue().frames = frames }
            return SQLITE_OK
        }, Unmanaged.passUnretained(frameCount).toOpaque())
    }

    /// Frames in the WAL as of the last commit.
    var walFrames: Int32 { frameCount.frames }

    /// Checkpoints as the policy says, and returns the bytes the checkpoint wrote (what this
    /// thread handed to write(2) meanwhile, /proc/thread-self/io: read only around a checkpoint,
    /// once per `passivePages` frames or so; 0 when none ran). A failure is counted, never
    /// thrown: the commit before it succeeded, and the next commit tries again.
    func afterCommit() -> UInt64 {
        let frames = frameCount.frames
        guard frames >= passivePages else {
            nextRestartAt = restartPages
            return 0
        }
        let before = ThreadWriteCounter.bytesWritten()
        func written() -> UInt64 {
            guard let before, let after = ThreadWriteCounter.bytesWritten(), after >= before else { return 0 }
            return after - before
        }
        if frames >= nextRestartAt {
            sqlite3_busy_timeout(connection.handle, restartWaitMilliseconds)
            let code = sqlite3_wal_checkpoint_v2(connection.handle, nil, SQLITE_CHECKPOINT_RESTART, nil, nil)
            sqlite3_busy_timeout(connection.handle, busyTimeoutMilliseconds)
            if code == SQLITE_OK {
                restarts += 1
                nextRestartAt = restartPages
            } else {
                if code & 0xFF == SQLITE_BUSY { restartsTimedOut += 1 } else { failures += 1 }
                nextRestartAt = frames &+ restartPages
            }
            return written()
        }
        let code = sqlite3_wal_checkpoint_v2(connection.handle, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
        if code == SQLITE_OK { passiveCheckpoints += 1 } else if code & 0xFF != SQLITE_BUSY { failures += 1 }
        return written()
    }

    /// Stops the hook from reaching this object (before the connection closes).
    func detach() {
        sqlite3_wal_hook(connection.handle, nil, nil)
    }
}
