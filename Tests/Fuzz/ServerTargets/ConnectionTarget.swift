import Dispatch
import EtcdAPI
import EtcdProto
import EtcdServer
import Foundation
import FuzzTargets
import GRPCTransport
import InMemoryEngine
import NIOCore
import NIOEmbedded
import Synchronization

/// `connection`: a client's raw bytes fed to the server's real connection pipeline
/// (`GRPCServer.configureConnection`: protocol sniffing, then the HTTP/2 + gRPC handler or
/// HTTP/1.1 with etcd's JSON gateway) on an `EmbeddedChannel`, with KV, Lease, Cluster and
/// Health of a fresh `EtcdServer` on the in-memory engine behind it.
///
/// Input: one flags byte (bit 0: the client reads what the server sends after each write,
/// else only at the end; bit 1: the connection is held unwritable, as by a client that does
/// not read, from the first write to the last), three split bytes (each cuts the rest at
/// byte/256 of its length), then the bytes the client sends, in up to four writes.
///
/// Findings (besides traps and sanitizer errors): bytes written to the connection while it
/// is not writable beyond one output batch (`maxUnwritableOutput`), a write that never
/// completes, and a connection still open three hours (of the event loop's clock) after the
/// client's last byte with nobody answering the server's pings: every state must end by a
/// timeout (handshake, HTTP/1.1 request, keepalive) or by a close.
enum ConnectionTarget {
    static let target = FuzzTarget(name: "connection", run: run)

    /// NIO's default high write watermark on a rusd connection (GRPCServer.bind).
    static let highWatermark = 1 << 20
    static let lowWatermark = 256 << 10
    /// What the server may still write once the connection turned unwritable: the HTTP/2
    /// handler's output batch (256 KiB) plus frame overhead.
    static let maxUnwritableOutput = 320 << 10

    static func run(_ input: [UInt8], _ scratch: String) throws {
        guard input.count >= 4 else { return }
        let clientReads = input[0] & 1 != 0, holdUnwritable = input[0] & 2 != 0
        let payload = Array(input[4...])
        let cuts = input[1..<4].map { Int($0) * payload.count / 256 }.sorted()
        var writes: [ArraySlice<UInt8>] = []
        var start = 0
        for cut in cuts + [payload.count] where cut > start {
            writes.append(payload[start..<cut])
            start = cut
        }

        let relay = CompletionRelay()
        var config = EtcdServerConfig(clusterID: 0x1234, memberID: 0x5678)
        config.leaseExpiryCheckMilliseconds = 3_600_000 * 24  // lease expiry would post from its own thread
        config.completionBatch = { relay.batch($0) }
        let etcd = try EtcdServer(engine: InMemoryEngine(), config: config)
        defer { relay.close(etcd) }
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let member = LocalMember(name: "fuzz", peerURLs: [], clientURLs: [])
        let services = [KVService.make(etcd, alarms: member.alarms), LeaseService.make(etcd, alarms: member.alarms),
                        ClusterService.make(etcd, member: member), HealthService().service]
        let calls = CallsInFlight()
        var transport = GRPCServerConfiguration()
        transport.maxReceiveMessageSize = 2 << 20
        transport.callMonitor = calls
        let http = HTTPEndpoints(server: etcd, member: member).handler(gateway: Gateway(services: services))
        transport.http1Handler = { request, loop in
            calls.add(1)
            let answer = http(request, loop)
            answer.whenComplete { _ in calls.add(-1) }
            return answer
        }
        let server = GRPCServer(services: services, configuration: transport, group: loop)
        let channel = EmbeddedChannel(loop: loop)
        try server.configureConnection(channel)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2379)).wait()

        var peer = Peer(channel: channel)
        for (i, bytes) in writes.enumerated() {
            guard channel.isActive else { break }
            if holdUnwritable && i == 0 { peer.forceUnwritable(true) }
            _ = try? channel.writeInbound(ByteBuffer(bytes: bytes))
            try settle(loop, relay, etcd, calls, &peer, reads: clientReads)
        }
        if holdUnwritable { peer.forceUnwritable(false) }
        try settle(loop, relay, etcd, calls, &peer, reads: true)
        if let excess = peer.worstUnwritableOutput, excess > maxUnwritableOutput {
            throw FuzzFinding("the server wrote \(excess) bytes to a connection that was not writable")
        }
        // Nothing more from the client, which reads everything and answers nothing: every
        // timeout gets its turn (handshake and HTTP/1.1 request 120 s, keepalive 2 h + 20 s).
        for _ in 0..<4 where channel.isActive {
            loop.advanceTime(by: .minutes(50))
            try settle(loop, relay, etcd, calls, &peer, reads: true)
        }
        guard !channel.isActive else {
            throw FuzzFinding("the connection is still open 200 minutes after the client's last byte")
        }
        _ = try? channel.finish(acceptAlreadyClosed: true)
    }

    /// Runs the event loop and the write path until neither has anything left to do: loop
    /// tasks (including input held for a later turn, due 50 µs later); then, while calls are
    /// in flight, a barrier write whose completion proves every earlier write completed, and
    /// again while that moved anything (calls still in flight then are open streams).
    static func settle(_ loop: EmbeddedEventLoop, _ relay: CompletionRelay, _ etcd: EtcdServer,
                       _ calls: CallsInFlight, _ peer: inout Peer, reads: Bool) throws {
        for _ in 0..<64 {
            loop.run()
            loop.advanceTime(by: .milliseconds(1))
            peer.take(reads: reads)
            let inFlight = calls.count
            if inFlight == 0 { return }
            let before = peer.received
            _ = try relay.barrier(etcd)
            loop.run()
            peer.take(reads: reads)
            if calls.count == inFlight && peer.received == before { return }
        }
    }

    /// The client's side of the socket: what the server wrote, whether it was read, and the
    /// connection's writability following NIO's watermarks (1 MiB / 256 KiB).
    struct Peer {
        let channel: EmbeddedChannel
        var received = 0
        var unread = 0
        var forced = false
        /// Bytes written while the connection was not writable (the largest such run).
        var unwritableRun = 0
        var worstUnwritableOutput: Int?

        init(channel: EmbeddedChannel) { self.channel = channel }

        mutating func take(reads: Bool) {
            while let data = try? channel.readOutbound(as: IOData.self) {
                let n = data.readableBytes
                received += n
                unread += n
                if !channel.isWritable {
                    unwritableRun += n
                    worstUnwritableOutput = max(worstUnwritableOutput ?? 0, unwritableRun)
                }
            }
            if reads && !forced { unread = 0 }
            update()
        }

        mutating func forceUnwritable(_ on: Bool) {
            forced = on
            if !on { unread = 0 }
            update()
        }

        private mutating func update() {
            let writable = !forced && (channel.isWritable ? unread <= ConnectionTarget.highWatermark
                                                          : unread < ConnectionTarget.lowWatermark)
            guard writable != channel.isWritable else { return }
            channel.isWritable = writable
            if writable { unwritableRun = 0 }
            channel.pipeline.fireChannelWritabilityChanged()
        }
    }
}

/// Calls (gRPC, and plain HTTP requests to the HTTP handler) started and not yet answered.
final class CallsInFlight: GRPCCallMonitor, GRPCMethodMonitor {
    private let calls = Atomic<Int>(0)
    var count: Int { calls.load(ordering: .relaxed) }
    func add(_ n: Int) { calls.add(n, ordering: .relaxed) }
    func monitor(service: String, method: String, kind: GRPCMethodKind) -> (any GRPCMethodMonitor)? { self }
    func started() { add(1) }
    func handled(_ code: GRPCStatus.Code) { add(-1) }
}

/// Runs the write path's completion batches (the applier thread's `completionBatch`) on the
/// fuzz driver's thread, the only one an `EmbeddedEventLoop` may be used from, while the
/// applier waits for them: responses reach the connection as they would from a real loop's
/// inbox, without a second thread touching it.
final class CompletionRelay: Sendable {
    /// A batch handed over: run on the driver while its poster waits (see `batch`), then
    /// released before the poster is woken (the closure must not outlive its call).
    private final class Job: @unchecked Sendable {
        var body: (() -> Void)?
        let done = DispatchSemaphore(value: 0)
        init(_ body: @escaping () -> Void) { self.body = body }

        func run() {
            body?()
            body = nil
            done.signal()
        }
    }
    private struct State {
        var jobs: [Job] = []
        var stopped = false
    }
    private let state = Mutex(State())
    private let available = DispatchSemaphore(value: 0)

    /// Called on the applier's thread: hands `body` to the driver and returns once it ran
    /// (after `stop`, runs it here: nothing is connected any more).
    func batch(_ body: () -> Void) {
        withoutActuallyEscaping(body) { body in
            let job = Job(body)
            let posted = state.withLock { s -> Bool in
                if s.stopped { return false }
                s.jobs.append(job)
                return true
            }
            guard posted else { return job.run() }
            available.signal()
            job.done.wait()
        }
    }

    /// Submits a write and runs completion batches until its own completed; the applier is
    /// first in, first out, so every write submitted before it completed too. Returns the
    /// number of batches run.
    func barrier(_ etcd: EtcdServer) throws -> Int {
        let completed = Mutex(false)
        var r = Etcdserverpb_PutRequest()
        r.key = Data("\u{0}fuzz-barrier".utf8)
        etcd.put(r) { _ in completed.withLock { $0 = true } }
        var batches = 0
        while !completed.withLock({ $0 }) {
            guard available.wait(timeout: .now() + 10) == .success else {
                throw FuzzFinding("a write did not complete within 10 s")
            }
            state.withLock { $0.jobs.removeFirst() }.run()
            batches += 1
        }
        return batches
    }

    /// Closes `etcd` on another thread while the batches its close posts run here, on the
    /// driver's thread (run on the applier's, the responses they complete touched the
    /// `EmbeddedEventLoop` from a second thread: NIO's "API misuse", a crash in later versions).
    func close(_ etcd: EtcdServer) {
        let closed = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            etcd.close()
            closed.signal()
        }
        while closed.wait(timeout: .now()) != .success {
            guard available.wait(timeout: .now() + .milliseconds(1)) == .success else { continue }
            state.withLock { $0.jobs.removeFirst() }.run()
        }
        stop()
    }

    /// From now on batches run on the caller's thread.
    private func stop() {
        let waiting = state.withLock { s in
            s.stopped = true
            let jobs = s.jobs
            s.jobs = []
            return jobs
        }
        for job in waiting { job.run() }
    }
}
