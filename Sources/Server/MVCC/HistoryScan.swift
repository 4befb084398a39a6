import EngineAPI

extension ReadTxn {
    /// The changes of main revisions `from ... through` (inclusive, clamped to this view's
    /// revision), in revision order, as the commit observer would have delivered them but
    /// without `prevKV` (see `previous(of:)`) and keeping only events whose key passes
    /// `wanted`. Revisions whose events are all filtered out are omitted.
    ///
    /// This is etcd's history read for watchers catching up (`syncWatchers`): one sequential
    /// scan of the revision records. Throws `.compacted` when `from` is below the compaction
    /// revision (of this view, or of a compaction committed while scanning, whose physical
    /// deletion may have removed records under the scan).
    public func changes(from: Int64, through: Int64,
                        wanted: (_ key: [UInt8]) -> Bool) throws(MVCCError) -> [RevisionEvents] {
        if from < state.compactRevision { throw .compacted }
        let last = min(through, state.revision)
        guard from <= last else { return [] }
        let view: any ReadView
        do { view = try store.engine.readView() } catch { throw .engine("\(error)") }
        var out: [RevisionEvents] = []
        var failure: MVCCError?
        do {
            try view.scan(StorageLayout.revisionRange(fromMain: max(from, 0), throughMain: last), reverse: false, limit: nil) { k, v in
                guard let rev = StorageLayout.parseRevisionKey(k) else {
                    failure = .corruption("engine key of \(k.count) bytes in the revision namespace is not a revision key")
                    return false
                }
                do throws(MVCCError) {
                    let h = try RevisionRecord.parseHeader(v, revision: rev)
                    let key = Array(UnsafeRawBufferPointer(rebasing: v[RevisionRecord.headerSize ..< RevisionRecord.headerSize + h.keyLength]))
                    guard wanted(key) else { return true }
                    let event: Event
                    if h.isTombstone {
                        event = Event(kind: .delete,
                                      kv: KeyValue(key: key, value: [], createRevision: 0, modRevision: rev.main, version: 0, lease: 0),
                                      prevKV: nil)
                    } else {
                        let value = Array(UnsafeRawBufferPointer(rebasing: v[(RevisionRecord.headerSize + h.keyLength)...]))
                        event = Event(kind: .put,
                                      kv: KeyValue(key: key, value: value, createRevision: h.createRevision,
                                                   modRevision: rev.main, version: h.version, lease: h.lease),
                                      prevKV: nil)
                    }
                    if let lastIndex = out.indices.last, out[lastIndex].revision == rev.main {
                        out[lastIndex].events.append(event)
                    } else {
                        out.append(RevisionEvents(revision: rev.main, events: [event]))
                    }
                    return true
                } catch {
                    failure = error
                    return false
                }
            }
        } catch {
            throw .engine("\(error)")
        }
        if let failure { throw failure }
        if from < store.compactRevision { throw .compacted }
        return out
    }

    /// The version of `event`'s key just before `event` (etcd's watch `prev_kv`: a range at
    /// mod_revision - 1), nil for a creation, or when that revision was compacted or the key
    /// did not exist.
    public func previous(of event: Event) -> KeyValue? {
        if event.kind == .put && event.kv.createRevision == event.kv.modRevision { return nil }
        let r = try? range(.single(event.kv.key), RangeOptions(revision: event.kv.modRevision - 1, limit: 1))
        return r?.kvs.first
    }
}
