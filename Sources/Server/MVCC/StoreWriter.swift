import EngineAPI

/// The store's only writer: applies write transactions to a working state and commits them in
/// groups (one engine batch, one fsync).
///
/// Confinement: exactly one thread at a time may use the writer (the applier of the log); it is
/// `@unchecked Sendable` so that the owner can move it to that thread. Nothing it does becomes
/// visible to readers before `commit` succeeds.
///
/// Use:
///
///     writer.beginTxn()
///     let r = try writer.range(...)          // sees this txn's own writes
///     let prev = try writer.put(key, value, lease: 0)
///     let deleted = try writer.deleteRange(.single(key))
///     let revision = writer.endTxn()         // one main revision if anything changed
///     …more transactions…
///     try writer.commit(appliedIndex: n)     // durable (sync), then visible, then observed
///
/// A transaction that changes nothing costs no revision. A failed `commit` throws and rolls the
/// working state back to the last committed state (the caller must fail every entry of the group).
public final class StoreWriter: @unchecked Sendable {
    let engine: any StorageEngine
    weak var store: MVCCStore?

    /// Last committed state (what readers see) and the working state built on it.
    private var committedState: CommittedState
    private var index: KeyIndex
    private var revision: Int64
    private var compactRevision: Int64

    private var batch = WriteBatch()
    /// Records written by this group, not yet in the engine.
    private var overlay: [Revision: [UInt8]] = [:]
    private var pendingEvents: [RevisionEvents] = []
    private var pendingCompactions: [(revision: Int64, dropped: [Revision], done: (@Sendable () -> Void)?)] = []

    // Current transaction.
    private var inTxn = false
    private var txnEvents: [Event] = []
    private var txnSub: Int64 = 0
    private var wantsPrevKV = false

    private var needsLayoutVersion: Bool

    init(engine: any StorageEngine, state: CommittedState, needsLayoutVersion: Bool) {
        self.engine = engine
        self.needsLayoutVersion = needsLayoutVersion
        committedState = state
        index = state.index
        revision = state.revision
        compactRevision = state.compactRevision
    }

    /// The working current revision (including applied, uncommitted transactions).
    public var currentRevision: Int64 { revision }
    public var currentCompactRevision: Int64 { compactRevision }
    /// Whether transactions are waiting for `commit`.
    public var hasPendingChanges: Bool { !batch.isEmpty }

    // MARK: transactions

    /// Starts a write transaction at revision `currentRevision + 1`.
    public func beginTxn() {
        precondition(!inTxn, "StoreWriter: beginTxn inside a transaction")
        inTxn = true
        txnEvents = []
        txnSub = 0
        if let store {
            wantsPrevKV = store.observer.withLock({ $0 != nil }) && store.previousValuesWanted.load(ordering: .relaxed)
        } else {
            wantsPrevKV = false
        }
    }

    /// Ends the transaction; returns its revision: `currentRevision + 1` when it changed
    /// something, else the unchanged current revision.
    @discardableResult
    public func endTxn() -> Int64 {
        precondition(inTxn, "StoreWriter: endTxn outside a transaction")
        inTxn = false
        if !txnEvents.isEmpty {
            revision += 1
            pendingEvents.append(RevisionEvents(revision: revision, events: txnEvents, previousIncluded: wantsPrevKV))
            txnEvents = []
        }
        return revision
    }

    /// The revision reads inside the transaction see (etcd: begin revision, +1 once it changed
    /// something).
    public var txnReadRevision: Int64 { revision + (txnEvents.isEmpty ? 0 : 1) }

    /// Range read inside the transaction (or between transactions): sees applied changes.
    /// `options.revision <= 0` reads at `txnReadRevision`; the header revision is the same.
    public func range(_ span: KeySpan, _ options: RangeOptions = RangeOptions()) throws(MVCCError) -> RangeResult {
        try rangeOver(index, span: span, options: options, currentRevision: txnReadRevision,
                      compactRevision: compactRevision) { (r: Revision) throws(MVCCError) -> KeyValue in
            try fetch(r)
        }
    }

    /// Latest version of `key`, including this group's changes.
    public func get(_ key: [UInt8]) throws(MVCCError) -> KeyValue? {
        guard let e = index.get(key), e.isLive else { return nil }
        return try fetch(e.latest.revision)
    }

    /// Latest state of a key without reading its record, nil when the key does not exist.
    public func latestMetadata(_ key: [UInt8]) -> (createRevision: Int64, modRevision: Int64, version: Int64, lease: Int64)? {
        guard let e = index.get(key), e.isLive else { return nil }
        return (e.createRevision, e.latest.revision.main, e.version, e.lease)
    }

    /// Puts `key`; returns the previous version when the key existed and `wantPrevious` (or an
    /// observer needs it), and the previous lease (0 if none) in any case.
    @discardableResult
    public func put(_ key: [UInt8], _ value: [UInt8], lease: Int64, wantPrevious: Bool = false)
        throws(MVCCError) -> (previous: KeyValue?, previousLease: Int64) {
        precondition(inTxn, "StoreWriter: put outside a transaction")
        let rev = Revision(main: revision + 1, sub: txnSub)
        txnSub += 1
        var create = rev.main
        var version: Int64 = 1
        var prevLease: Int64 = 0
        var prevRevision: Revision?
        let ir = IndexedRevision(revision: rev, isTombstone: false)
        // One index lookup: read the key's latest state and append the new revision in place.
        // (A failure below fails the whole group, which rolls the index back.)
        index.upsert(key, make: { KeyHistory(key: key, first: ir, createRevision: rev.main, version: 1, lease: lease) }) { e in
            if e.latest.revision == rev { return }  // just made
            if e.isLive {
                create = e.createRevision
                version = e.version + 1
                prevLease = e.lease
                prevRevision = e.latest.revision
            }
            e.append(ir, createRevision: create, version: version, lease: lease)
        }
        var prev: KeyValue?
        if let prevRevision, wantPrevious || wantsPrevKV { prev = try fetch(prevRevision) }
        let record = RevisionRecord.encodePut(key: key, value: value, createRevision: create, version: version, lease: lease)
        stageRecord(rev, record)
        txnEvents.append(Event(kind: .put,
                               kv: KeyValue(key: key, value: value, createRevision: create, modRevision: rev.main,
                                            version: version, lease: lease),
                               prevKV: wantsPrevKV ? prev : nil))
        return (prev, prevLease)
    }

    /// Deletes every live key in `span`; returns the deleted keys' last versions when
    /// `wantPrevious` (or an observer needs them), else key-values with only key and lease set.
    @discardableResult
    public func deleteRange(_ span: KeySpan, wantPrevious: Bool = false) throws(MVCCError) -> [KeyValue] {
        precondition(inTxn, "StoreWriter: deleteRange outside a transaction")
        var victims: [(key: [UInt8], rev: Revision, lease: Int64)] = []
        if span.isSingleKey {
            if let e = index.get(span.start), e.isLive { victims.append((e.key, e.latest.revision, e.lease)) }
        } else if span.end.map({ compareBytes($0, span.start) > 0 }) ?? true {
            index.forEach(from: span.start, to: span.end) { e in
                if e.isLive { victims.append((e.key, e.latest.revision, e.lease)) }
                return true
            }
        }
        var out: [KeyValue] = []
        out.reserveCapacity(victims.count)
        for v in victims {
            let rev = Revision(main: revision + 1, sub: txnSub)
            txnSub += 1
            var prev: KeyValue?
            if wantPrevious || wantsPrevKV { prev = try fetch(v.rev) }
            stageRecord(rev, RevisionRecord.encodeTombstone(key: v.key))
            index.upsert(v.key, make: { fatalError("deleted key vanished from the index") }) { e in
                e.append(IndexedRevision(revision: rev, isTombstone: true), createRevision: 0, version: 0, lease: 0)
            }
            txnEvents.append(Event(kind: .delete,
                                   kv: KeyValue(key: v.key, value: [], createRevision: 0, modRevision: rev.main, version: 0, lease: 0),
                                   prevKV: wantsPrevKV ? prev : nil))
            out.append(prev ?? KeyValue(key: v.key, value: [], createRevision: 0, modRevision: v.rev.main, version: 0, lease: v.lease))
        }
        return out
    }

    // MARK: compaction

    /// Compacts the history at `rev` (etcd's Compact): reads below `rev` fail from now on; the
    /// index drops unreachable revisions immediately; their records are deleted from the engine
    /// in the background after the group commits, in bounded batches. `physicalDone` runs when
    /// that deletion is durable. Costs no revision. Must be called between transactions.
    public func compact(_ rev: Int64, physicalDone: (@Sendable () -> Void)? = nil) throws(MVCCError) {
        precondition(!inTxn, "StoreWriter: compact inside a transaction")
        if rev <= compactRevision { throw .compacted }
        if rev > revision { throw .futureRevision }
        var dropped: [Revision] = []
        let started = ContinuousClock.now
        index.compact(at: rev, dropped: &dropped)
        store?.compactor.stats.indexPauseMilliseconds.observe(CompactionStats.milliseconds(.now - started))
        compactRevision = rev
        batch.put(MetaKey.compactRevision.engineKey, MetaKey.encode(UInt64(bitPattern: rev)))
        pendingCompactions.append((rev, dropped, physicalDone))
    }

    // MARK: auxiliary records

    /// Stages a put of a server record (leases, auth, …) in the current group. Its key must
    /// start with a prefix outside the store's own namespaces (`r`, `m`).
    public func stageAuxiliaryPut(_ key: [UInt8], _ value: [UInt8]) {
        precondition(key.first != StorageLayout.revisionPrefix && key.first != StorageLayout.metaPrefix,
                     "auxiliary key in a reserved namespace")
        batch.put(key, value)
    }

    /// Stages a delete of a server record (see `stageAuxiliaryPut`).
    public func stageAuxiliaryDelete(_ key: [UInt8]) {
        precondition(key.first != StorageLayout.revisionPrefix && key.first != StorageLayout.metaPrefix,
                     "auxiliary key in a reserved namespace")
        batch.delete(key)
    }

    // MARK: commit

    /// Writes every change since the last commit, plus the applied log index, in ONE engine
    /// batch with `sync: true`; then publishes the new state to readers, delivers the events to
    /// the observer and starts the physical part of compactions. On failure, rolls back to the
    /// last committed state and rethrows. Returns how long the synced engine write took.
    @discardableResult
    public func commit(appliedIndex: UInt64) throws(MVCCError) -> Duration {
        precondition(!inTxn, "StoreWriter: commit inside a transaction")
        batch.put(MetaKey.currentRevision.engineKey, MetaKey.encode(UInt64(bitPattern: revision)))
        batch.put(MetaKey.appliedIndex.engineKey, MetaKey.encode(appliedIndex))
        if needsLayoutVersion {
            batch.put(MetaKey.layoutVersion.engineKey, MetaKey.encode(StoreLoader.layoutVersion))
        }
        let clock = ContinuousClock()
        let writeStarted = clock.now
        do {
            try engine.write(batch, sync: true)
        } catch {
            rollback()
            throw .engine("\(error)")
        }
        let writeDuration = clock.now - writeStarted
        let state = CommittedState(index: index, revision: revision, compactRevision: compactRevision,
                                   appliedIndex: appliedIndex)
        committedState = state
        needsLayoutVersion = false
        store?.publish(state)
        let events = pendingEvents
        let compactions = pendingCompactions
        batch = WriteBatch()
        overlay.removeAll(keepingCapacity: true)
        pendingEvents = []
        pendingCompactions = []
        if !events.isEmpty, let observer = store?.observer.withLock({ $0 }) {
            observer.notify(events)
        }
        for c in compactions {
            store?.compactor.schedule(revision: c.revision, dropped: c.dropped, completion: c.done)
        }
        return writeDuration
    }

    /// Discards every change since the last commit.
    public func rollback() {
        inTxn = false
        txnEvents = []
        index = committedState.index
        revision = committedState.revision
        compactRevision = committedState.compactRevision
        batch = WriteBatch()
        overlay.removeAll(keepingCapacity: true)
        pendingEvents = []
        pendingCompactions = []
    }

    // MARK: internals

    private func stageRecord(_ rev: Revision, _ record: [UInt8]) {
        batch.put(StorageLayout.revisionKey(rev), record)
        overlay[rev] = record
    }

    private func fetch(_ rev: Revision) throws(MVCCError) -> KeyValue {
        if rev.main > committedState.revision, let rec = overlay[rev] {
            return try RevisionRecord.decode(rec, revision: rev).0
        }
        let bytes: [UInt8]?
        do { bytes = try engine.get(StorageLayout.revisionKey(rev)) } catch { throw .engine("\(error)") }
        guard let bytes else {
            throw .corruption("revision record \(rev) is in the index but missing from the engine")
        }
        return try RevisionRecord.decode(bytes, revision: rev).0
    }
}
