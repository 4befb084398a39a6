/// Runs the apiserver's compaction step every `intervalSeconds` until cancelled; returns how
/// many Compact calls were made.
final class Compactor: Sendable {
    let client: any EtcdClient
    let intervalSeconds: Double
    init(client: any EtcdClient, intervalSeconds: Double) {
        self.client = client
        self.intervalSeconds = intervalSeconds
    }

    func run() async throws -> Int {
        var store = KubeObjectStore(client: client)
        var previous: Int64 = 0
        var version: Int64 = 0
        var compactions = 0
        // First step right away: records the revision that the next step compacts to.
        try await store.compactStep(previousRevision: &previous, compactKeyVersion: &version)
        while !Task.isCancelled {
            do { try await Task.sleep(nanoseconds: UInt64(intervalSeconds * 1e9)) } catch { break }
            let before = store.latency["compact"]?.count ?? 0
            try await store.compactStep(previousRevision: &previous, compactKeyVersion: &version)
            if (store.latency["compact"]?.count ?? 0) > before { compactions += 1 }
        }
        return compactions
    }

    func close() async { await client.close() }
}
