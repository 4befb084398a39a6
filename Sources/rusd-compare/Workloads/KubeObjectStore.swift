import Foundation

/// kube-apiserver's storage calls, issued exactly as its etcd3 store does (see
/// shared/docs/kubernetes-and-etcd-facts.md):
/// create = Txn If(mod_revision==0) Then(Put [lease]); update = Txn If(mod_revision==R) Then(Put)
/// Else(Range); delete = Txn If(mod_revision==R) Then(Delete) Else(Range); get = Range limit 1;
/// list = Range prefix with limit 500. Tracks each object's mod revision as the apiserver would.
/// Latency is recorded per call kind; a lost compare-and-swap is retried with the revision read
/// from the Else branch (counted as `conflicts`).
struct KubeObjectStore: Sendable {
    let client: any EtcdClient
    var revisions: [String: Int64] = [:]
    var latency: [String: LatencyHistogram] = [:]
    var logicalBytes: Int64 = 0
    var operations = 0
    var conflicts = 0
    /// Successful writes (each produces one watch event on its prefix).
    var mutations = 0
    var lastRevision: Int64 = 0
    /// When each successful write was acknowledged (revision -> monotonic nanoseconds), for the
    /// watch lag (`PrefixWatchers.stop`).
    var acknowledged: [Int64: UInt64] = [:]

    init(client: any EtcdClient) { self.client = client }

    private mutating func timed<T>(_ kind: String, _ body: () async throws -> T) async throws -> T {
        let t0 = monotonicNanos()
        do {
            let value = try await body()
            latency[kind, default: LatencyHistogram()].recordSince(t0)
            operations += 1
            return value
        } catch {
            latency[kind, default: LatencyHistogram()].recordError()
            throw error
        }
    }

    mutating func create(_ key: String, _ object: [UInt8], lease: Int64 = 0) async throws {
        let client = self.client
        let k = Array(key.utf8)
        let result = try await timed("create") {
            try await client.txn(compares: [.modRevision(key: k, equals: 0)],
                                 success: [.put(key: k, value: object, lease: lease)], failure: [])
        }
        logicalBytes += Int64(k.count + object.count)
        lastRevision = max(lastRevision, result.revision)
        if result.succeeded { revisions[key] = result.revision; mutations += 1; acknowledged[result.revision] = monotonicNanos() }
    }

    mutating func update(_ key: String, _ object: [UInt8]) async throws {
        let client = self.client
        let k = Array(key.utf8)
        for _ in 0..<5 {
            let expected = revisions[key] ?? 0
            let result = try await timed("update") {
                try await client.txn(compares: [.modRevision(key: k, equals: expected)],
                                     success: [.put(key: k, value: object, lease: 0)],
                                     failure: [.range(key: k, rangeEnd: [], limit: 0)])
            }
            lastRevision = max(lastRevision, result.revision)
            if result.succeeded {
                revisions[key] = result.revision
                logicalBytes += Int64(k.count + object.count)
                mutations += 1
                acknowledged[result.revision] = monotonicNanos()
                return
            }
            conflicts += 1
            revisions[key] = result.rangeKVs.first?.modRevision ?? 0
        }
    }

    mutating func delete(_ key: String) async throws {
        let client = self.client
        let k = Array(key.utf8)
        for _ in 0..<5 {
            let expected = revisions[key] ?? 0
            let result = try await timed("delete") {
                try await client.txn(compares: [.modRevision(key: k, equals: expected)],
                                     success: [.delete(key: k, rangeEnd: [])],
                                     failure: [.range(key: k, rangeEnd: [], limit: 0)])
            }
            lastRevision = max(lastRevision, result.revision)
            if result.succeeded || result.rangeKVs.isEmpty {
                if result.succeeded { mutations += 1; acknowledged[result.revision] = monotonicNanos() }
                revisions[key] = nil
                return
            }
            conflicts += 1
            revisions[key] = result.rangeKVs.first?.modRevision ?? 0
        }
    }

    mutating func get(_ key: String) async throws {
        let client = self.client
        let k = Array(key.utf8)
        _ = try await timed("get") {
            try await client.range(key: k, rangeEnd: [], limit: 1, revision: 0, keysOnly: false, countOnly: false)
        }
    }

    /// Lists a prefix page by page (limit 500), later pages pinned to the first page's revision.
    mutating func list(_ prefix: String) async throws {
        let client = self.client
        let p = Array(prefix.utf8)
        var start = p
        var revision: Int64 = 0
        while true {
            let page = try await timed("list") {
                try await client.range(key: start, rangeEnd: prefixEnd(p), limit: 500, revision: revision,
                                       keysOnly: false, countOnly: false)
            }
            guard page.more, let last = page.kvs.last else { return }
            if revision == 0 { revision = page.revision }
            start = last.key + [0]
        }
    }

    /// The apiserver's compaction step: CAS on `compact_rev_key`'s version, then Compact.
    mutating func compactStep(previousRevision: inout Int64, compactKeyVersion: inout Int64) async throws {
        let client = self.client
        let key = Array("compact_rev_key".utf8)
        let current = try await client.currentRevision()
        let result = try await timed("compact-txn") {
            try await client.txn(compares: [.version(key: key, equals: compactKeyVersion)],
                                 success: [.put(key: key, value: Array(String(current).utf8), lease: 0)],
                                 failure: [.range(key: key, rangeEnd: [], limit: 0)])
        }
        compactKeyVersion = result.succeeded ? compactKeyVersion + 1 : (result.rangeKVs.first?.version ?? 0)
        if result.succeeded && previousRevision > 0 {
            let target = previousRevision
            try await timed("compact") { try await client.compact(revision: target, physical: false) }
        }
        previousRevision = current
    }
}
