/// A closed-loop load on one connection, as etcd's `benchmark` tool runs it: each worker has one
/// request in flight at a time, with a random key from [0, keySpace) (its own `SplitMix64`
/// seeded with `seeds[i]`), and issues the next as soon as the previous one completes, until
/// `deadline` (a `monotonicNanos()` value).
struct ClosedLoopLoad: Sendable {
    enum Operation: Sendable {
        /// Put(key, value).
        case put
        /// Linearizable single-key Range.
        case range
        /// Txn with no compares and Then(Put(key, value)).
        case txnPut
    }

    var operation: Operation
    var seeds: [UInt64]
    var deadline: UInt64
    var keySpace: Int
    var value: [UInt8]
    /// Names key i of the key space; nil = `eightByteKey(i)` (etcd's benchmark keys).
    var keyForIndex: (@Sendable (Int) -> [UInt8])? = nil

    /// Key `i` of the key space.
    func key(_ i: Int) -> [UInt8] { keyForIndex?(i) ?? eightByteKey(i) }

    /// How long a run may outlast `deadline` before it is failed (a stuck server fails the run
    /// instead of hanging the comparison).
    static let grace: UInt64 = 60_000_000_000
}

extension EtcdClient {
    /// Runs `load` with one task per worker over the async API (clients without a cheaper way).
    /// Failed requests are counted as errors, as the workloads count them.
    func runClosedLoopWithTasks(_ load: ClosedLoopLoad) async throws -> LatencyHistogram {
        try await LatencyHistogram.merged(workers: load.seeds.count) { w in
            var histogram = LatencyHistogram()
            var rng = SplitMix64(seed: load.seeds[w])
            while monotonicNanos() < load.deadline {
                let key = load.key(Int(rng.next() % UInt64(load.keySpace)))
                let t0 = monotonicNanos()
                do {
                    switch load.operation {
                    case .put:
                        _ = try await self.put(key: key, value: load.value, lease: 0)
                    case .range:
                        _ = try await self.range(key: key, rangeEnd: [], limit: 0, revision: 0,
                                                 keysOnly: false, countOnly: false)
                    case .txnPut:
                        _ = try await self.txn(compares: [], success: [.put(key: key, value: load.value, lease: 0)],
                                               failure: [])
                    }
                    histogram.recordSince(t0)
                } catch {
                    histogram.recordError()
                }
            }
            return histogram
        }
    }
}
