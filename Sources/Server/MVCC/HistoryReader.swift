import EngineAPI

extension ReadTxn {
    /// The events of revisions `from ... through` (inclusive; `through` is capped at this view's
    /// revision), in revision order, read back from the stored history — for watchers that
    /// start in the past or fell behind. At most `limit` revisions are returned (the last one
    /// complete); continue from the next revision. With `withPrevKV`, each event carries the
    /// version it replaced when that version is still in the store (not compacted).
    /// Throws `.compacted` when `from` is below the compaction revision.
    public func events(from: Int64, through: Int64, limit: Int = 1000, withPrevKV: Bool = false) throws(MVCCError) -> [RevisionEvents] {
        let start = max(from, 1)
        let end = min(through, state.revision)
        if from < state.compactRevision { throw .compacted }
        guard start <= end else { return [] }
        let view: any ReadView
        do { view = try store.engine.readView() } catch { throw .engine("\(error)") }
        var out: [RevisionEvents] = []
        var failure: MVCCError?
        do {
            try view.scan(StorageLayout.revisionRange(fromMain: start, throughMain: end), reverse: false, limit: nil) { k, v in
                guard let rev = StorageLayout.parseRevisionKey(k) else { return true }
                if out.last?.revision != rev.main {
                    if out.count >= limit { return false }
                    out.append(RevisionEvents(revision: rev.main, events: []))
                }
                do throws(MVCCError) {
                    let (kv, tomb) = try RevisionRecord.decode(Array(v), revision: rev)
                    var prev: KeyValue?
                    if withPrevKV, let e = state.index.get(kv.key), let p = e.visibleRevision(at: rev.main - 1) {
                        prev = try? store.fetchCommitted(p)
                    }
                    let event = tomb
                        ? Event(kind: .delete, kv: KeyValue(key: kv.key, value: [], createRevision: 0, modRevision: rev.main, version: 0, lease: 0), prevKV: prev)
                        : Event(kind: .put, kv: kv, prevKV: prev)
                    out[out.count - 1].events.append(event)
                } catch {
                    failure = error
                    return false
                }
                return true
            }
        } catch {
            throw .engine("\(error)")
        }
        if let failure { throw failure }
        // A compaction that ran meanwhile may have deleted part of what was scanned.
        if from < store.compactRevision { throw .compacted }
        return out
    }
}
