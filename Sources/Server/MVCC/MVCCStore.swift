import EngineAPI
import Synchronization

/// Receives the events of every committed revision, in revision order, on the writer's thread,
/// after the batch holding them is durable and visible to readers. Must not block for long.
public typealias CommitObserver = @Sendable (_ revisions: [RevisionEvents]) -> Void

/// The installed commit observer (see `MVCCStore.observer`).
final class ObserverBox: Sendable {
    let notify: CommitObserver
    init(_ notify: @escaping CommitObserver) { self.notify = notify }
}

/// The committed state readers see: an immutable snapshot of the index and revisions.
struct CommittedState: Sendable {
    var index: KeyIndex
    var revision: Int64
    var compactRevision: Int64
    var appliedIndex: UInt64
}

/// etcd's MVCC key-value store on a `StorageEngine`.
///
/// - History: every change gets a `Revision`; one write transaction = one main revision.
///   Records stay in the engine until compacted (see `StorageLayout` for the layout).
/// - Reads (`read()`) are served on the caller's thread from the last committed state: an
///   immutable copy-on-write snapshot of the index, taken under a lock held for a pointer copy,
///   plus point reads of records from the engine. They never wait for a write.
/// - Writes go through the single `StoreWriter` (`writer`), which the owner drives from one
///   thread at a time: it applies any number of transactions, then `commit` writes all of them
///   in one engine batch with `sync: true` (group commit) and publishes the new state.
/// - Start-up (`init`) rebuilds the index with one sequential scan of the revision records.
public final class MVCCStore: Sendable {
    public let engine: any StorageEngine
    let committed: Mutex<CommittedState>
    /// Boxed: a closure kept directly in a `Mutex` is re-wrapped in a reabstraction thunk by
    /// every `withLock` (inout access to a function value in a generic container), so each
    /// commit would have added two thunks to the chain every later commit calls through.
    let observer = Mutex<ObserverBox?>(nil)
    /// Whether the observer wants previous versions in the events (see `setPreviousValuesWanted`).
    let previousValuesWanted = Atomic<Bool>(true)
    let compactor: Compactor
    /// The one writer. Confined to the thread that applies the log (see `StoreWriter`).
    public let writer: StoreWriter

    /// Opens the store on `engine`, rebuilding the index from the revision records, and
    /// resumes a physical compaction a crash interrupted.
    public init(engine: any StorageEngine) throws(MVCCError) {
        self.engine = engine
        let loaded = try StoreLoader.load(engine)
        let state = CommittedState(index: loaded.index, revision: loaded.revision,
                                   compactRevision: loaded.compactRevision, appliedIndex: loaded.appliedIndex)
        committed = Mutex(state)
        compactor = Compactor(engine: engine, finished: loaded.finishedCompactRevision)
        writer = StoreWriter(engine: engine, state: state, needsLayoutVersion: !loaded.hasLayoutVersion)
        writer.store = self
        if !loaded.unfinishedDrops.isEmpty || loaded.finishedCompactRevision < loaded.compactRevision {
            compactor.schedule(revision: loaded.compactRevision, dropped: loaded.unfinishedDrops, completion: nil)
        }
    }

    /// Installs (or removes) the commit observer (the watch hub).
    public func setObserver(_ o: CommitObserver?) {
        let box = o.map(ObserverBox.init)
        observer.withLock { $0 = box }
    }

    /// Tells the writer whether the observer needs each event's previous version (`prevKV`).
    /// While it does not, transactions that begin skip reading previous versions (a record read
    /// and decode per put or delete) and mark their `RevisionEvents` as without them; an
    /// observer that starts wanting them again must fill in those of revisions marked so (they
    /// may still be in flight). Default: wanted.
    public func setPreviousValuesWanted(_ wanted: Bool) {
        previousValuesWanted.store(wanted, ordering: .relaxed)
    }

    /// A consistent read view of the committed state, cheap to take (one lock, one copy).
    public func read() -> ReadTxn {
        ReadTxn(state: committed.withLock { $0 }, store: self)
    }

    public var currentRevision: Int64 { committed.withLock { $0.revision } }
    public var compactRevision: Int64 { committed.withLock { $0.compactRevision } }
    /// Index of the last applied log entry that is durable (etcd's consistent index).
    public var appliedIndex: UInt64 { committed.withLock { $0.appliedIndex } }
    /// The revision up to which records have been physically removed.
    public var finishedCompactRevision: Int64 { compactor.finishedRevision }
    /// Compaction's durations and deleted records (/metrics).
    public var compactionStats: CompactionStats { compactor.stats }

    /// Waits for scheduled physical compactions, then returns. Call before closing the engine.
    public func close() {
        compactor.drain()
    }

    func publish(_ state: CommittedState) {
        committed.withLock { $0 = state }
    }

    /// Reads and decodes the record of `rev` from the engine. A missing record means the
    /// revision was compacted since the reader's snapshot was taken.
    func fetchCommitted(_ rev: Revision) throws(MVCCError) -> KeyValue {
        let bytes: [UInt8]?
        do { bytes = try engine.get(StorageLayout.revisionKey(rev)) } catch { throw .engine("\(error)") }
        guard let bytes else {
            if rev.main < compactRevision { throw .compacted }
            throw .corruption("revision record \(rev) is in the index but missing from the engine")
        }
        return try RevisionRecord.decode(bytes, revision: rev).0
    }
}

/// A read view of the store at one committed state (see `MVCCStore.read()`).
public struct ReadTxn: Sendable {
    let state: CommittedState
    let store: MVCCStore

    /// The current revision of this view.
    public var revision: Int64 { state.revision }
    public var compactRevision: Int64 { state.compactRevision }
    public var appliedIndex: UInt64 { state.appliedIndex }
    /// Number of keys in the index (live or with history).
    public var indexedKeyCount: Int { state.index.count }

    /// Range read with etcd's semantics (future / compacted revision checks first).
    public func range(_ span: KeySpan, _ options: RangeOptions = RangeOptions()) throws(MVCCError) -> RangeResult {
        let revisions = try visibleRevisions(state.index, span: span, options: options,
                                             currentRevision: state.revision, compactRevision: state.compactRevision)
        if options.countOnly || revisions.isEmpty {
            return RangeResult(kvs: [], count: revisions.count, revision: state.revision)
        }
        let n = options.limit > 0 ? min(options.limit, revisions.count) : revisions.count
        // One engine read view when several records are read (see `RecordReader`).
        let reader = RecordReader(store: store, records: n)
        var kvs: [KeyValue] = []
        kvs.reserveCapacity(n)
        for r in revisions[..<n] { kvs.append(try reader.keyValue(r)) }
        return RangeResult(kvs: kvs, count: revisions.count, revision: state.revision)
    }

    /// Latest state of a key without reading its record: (create, mod, version, lease), nil
    /// when the key does not exist.
    public func latestMetadata(_ key: [UInt8]) -> (createRevision: Int64, modRevision: Int64, version: Int64, lease: Int64)? {
        guard let e = state.index.get(key), e.isLive else { return nil }
        return (e.createRevision, e.latest.revision.main, e.version, e.lease)
    }

    /// Visits every live key with a lease attached (for rebuilding lease attachments).
    public func forEachLeasedKey(_ visit: (_ key: [UInt8], _ lease: Int64) -> Void) {
        state.index.forEach(from: [], to: nil) { e in
            if e.isLive && e.lease != 0 { visit(e.key, e.lease) }
            return true
        }
    }
}
