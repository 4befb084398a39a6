import EtcdProto
import Foundation
import GRPCTransport
import NIOCore

/// Runs a `ClosedLoopLoad` on one `GRPCClient` connection entirely on its event loop: each
/// completion records its latency and starts the worker's next request right there, with no
/// task, future or thread hop per request. The load generator's own CPU is paid in every
/// target's run alike and, on a machine the server shares, comes out of the server's share:
/// this keeps it small. Requests carry no grpc-timeout (etcd's benchmark sends none); a run
/// still outlasting its deadline by `ClosedLoopLoad.grace` fails instead of hanging.
final class GRPCClosedLoop: @unchecked Sendable {
    // Loop-confined: every var below is touched on `connection.eventLoop` only.
    private let connection: GRPCClient
    private let load: ClosedLoopLoad
    private let value: Data
    private let promise: EventLoopPromise<LatencyHistogram>
    private var rngs: [SplitMix64]
    private var histogram = LatencyHistogram()
    private var running = 0
    private var done = false
    private var watchdog: Scheduled<Void>?

    private init(connection: GRPCClient, load: ClosedLoopLoad) {
        self.connection = connection
        self.load = load
        value = Data(load.value)
        promise = connection.eventLoop.makePromise(of: LatencyHistogram.self)
        rngs = load.seeds.map { SplitMix64(seed: $0) }
    }

    /// Runs `load` on `connection` and returns the merged latencies (failed requests as errors).
    static func run(_ load: ClosedLoopLoad, on connection: GRPCClient) async throws -> LatencyHistogram {
        let driver = GRPCClosedLoop(connection: connection, load: load)
        connection.eventLoop.execute { driver.start() }
        return try await driver.promise.futureResult.get()
    }

    private func start() {
        running = rngs.count
        if running == 0 { return finish() }
        let now = monotonicNanos()
        let limit = load.deadline > now ? load.deadline - now + ClosedLoopLoad.grace : ClosedLoopLoad.grace
        watchdog = connection.eventLoop.scheduleTask(in: .nanoseconds(Int64(limit))) { [self] in
            guard !done else { return }
            done = true
            promise.fail(SubprocessError(description:
                "\(running) closed-loop workers still waiting \(ClosedLoopLoad.grace / 1_000_000_000) s after the deadline"))
        }
        for worker in rngs.indices { issue(worker) }
    }

    private func issue(_ worker: Int) {
        let key = Data(load.key(Int(rngs[worker].next() % UInt64(load.keySpace))))
        let t0 = monotonicNanos()
        switch load.operation {
        case .put:
            var request = Etcdserverpb_PutRequest()
            request.key = key
            request.value = value
            connection.unary("/etcdserverpb.KV/Put", request, responseType: Etcdserverpb_PutResponse.self) { [self] in
                completed(worker, t0, $0.isSuccess)
            }
        case .range:
            var request = Etcdserverpb_RangeRequest()
            request.key = key
            connection.unary("/etcdserverpb.KV/Range", request, responseType: Etcdserverpb_RangeResponse.self) { [self] in
                completed(worker, t0, $0.isSuccess)
            }
        case .txnPut:
            var put = Etcdserverpb_PutRequest()
            put.key = key
            put.value = value
            var op = Etcdserverpb_RequestOp()
            op.request = .requestPut(put)
            var request = Etcdserverpb_TxnRequest()
            request.success = [op]
            connection.unary("/etcdserverpb.KV/Txn", request, responseType: Etcdserverpb_TxnResponse.self) { [self] in
                completed(worker, t0, $0.isSuccess)
            }
        }
    }

    private func completed(_ worker: Int, _ t0: UInt64, _ ok: Bool) {
        if done { return }
        if ok { histogram.recordSince(t0) } else { histogram.recordError() }
        if monotonicNanos() < load.deadline {
            issue(worker)
            return
        }
        running -= 1
        if running == 0 { finish() }
    }

    private func finish() {
        guard !done else { return }
        done = true
        watchdog?.cancel()
        promise.succeed(histogram)
    }
}

private extension Result {
    var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
