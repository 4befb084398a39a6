/// Fills a store for the sweep through the persistent client: Txns of `batch` Puts (etcd's
/// default --max-txn-ops is 128), `workersPerConnection` of them in flight on each connection.
/// Bulk loading through the gRPC API was chosen over restoring a generated snapshot: it works the
/// same way on every target (no per-engine restore path to trust) and runs at the server's batched
/// write rate, which the sweep reports as `fill_keys_per_s`.
struct SweepLoader: Sendable {
    var connections: [any EtcdClient]
    var workersPerConnection = 8
    var batch = 128
    var progress: ProgressReporter

    /// Writes keys [from, to) and then gives every 10th of them (i % 10 == 0) two more versions:
    /// "some history", as objects that were updated after their creation. Returns the number of
    /// Puts issued.
    func fill(from: Int, to: Int) async throws -> Int {
        guard to > from else { return 0 }
        try await pass(count: to - from, version: 0) { from + $0 }
        let firstTenth = (from + 9) / 10 * 10
        let tenths = firstTenth < to ? (to - 1 - firstTenth) / 10 + 1 : 0
        for version in 1...2 where tenths > 0 {
            try await pass(count: tenths, version: version) { firstTenth + $0 * 10 }
        }
        return (to - from) + 2 * tenths
    }

    /// Puts `index(j)` for j in [0, count) at `version`, in batches of distinct keys (a Txn may
    /// not put one key twice), batches claimed by the workers from a shared counter.
    private func pass(count: Int, version: Int, index: @escaping @Sendable (Int) -> Int) async throws {
        let batches = (count + batch - 1) / batch
        let next = SharedCounter()
        let batch = self.batch
        let progress = self.progress
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<(connections.count * workersPerConnection) {
                let client = connections[worker % connections.count]
                group.addTask {
                    while true {
                        let b = next.takeNext()
                        guard b < batches else { return }
                        let ops = (b * batch..<min((b + 1) * batch, count)).map { j -> TxnOp in
                            let i = index(j)
                            return .put(key: SweepKeys.key(i), value: SweepKeys.value(i, version: version), lease: 0)
                        }
                        _ = try await client.txn(compares: [], success: ops, failure: [])
                        progress.advance(ops.count)
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
