import EtcdProto
import Foundation
import GRPCTransport
import NIOCore
import NIOPosix
import Synchronization

/// A client configured with every member's endpoint, as etcd's clients are: it sends each Put
/// to its current member and, when a call fails or takes longer than `attemptTimeout`, drops
/// that connection and moves to the next endpoint (in the order given), reconnecting as needed.
/// One request at a time. Used by the failover workload to time how long a client that loses
/// its member takes to write again.
final class FailoverPutClient: Sendable {
    let endpoints: [(host: String, port: Int)]
    let attemptTimeoutMs: Int64
    private struct State {
        var current = 0
        var connections: [GRPCClient?]
    }
    private let state: Mutex<State>

    init(endpoints: [String], attemptTimeoutMs: Int64 = 1_000) throws {
        self.endpoints = try endpoints.map { e in
            guard let url = URL(string: e), let host = url.host, let port = url.port else {
                throw SubprocessError(description: "bad endpoint \(e)")
            }
            return (host, port)
        }
        self.attemptTimeoutMs = attemptTimeoutMs
        state = Mutex(State(connections: Array(repeating: nil, count: endpoints.count)))
    }

    /// The index (into `endpoints`) of the member the next request goes to.
    var currentMember: Int { state.withLock { $0.current } }

    /// One Put on the current member; on failure the client moves to the next member (the
    /// error is returned, not thrown: the caller retries).
    func put(key: [UInt8], value: [UInt8]) async -> Bool {
        let (member, existing) = state.withLock { ($0.current, $0.connections[$0.current]) }
        let connection: GRPCClient
        if let existing {
            connection = existing
        } else {
            do {
                let e = endpoints[member]
                connection = try await GRPCClient.connect(host: e.host, port: e.port, group: MultiThreadedEventLoopGroup.singleton).get()
            } catch {
                moveOn(from: member, dropping: nil)
                return false
            }
            state.withLock { $0.connections[member] = connection }
        }
        var request = Etcdserverpb_PutRequest()
        request.key = Data(key)
        request.value = Data(value)
        let ok = await Self.attempt(connection, request, timeoutMs: attemptTimeoutMs)
        if !ok { moveOn(from: member, dropping: connection) }
        return ok
    }

    func close() async {
        let all = state.withLock { s in
            let c = s.connections.compactMap { $0 }
            s.connections = Array(repeating: nil, count: s.connections.count)
            return c
        }
        for c in all { try? await c.close().get() }
    }

    private func moveOn(from member: Int, dropping connection: GRPCClient?) {
        state.withLock { s in
            if s.current == member {
                s.connections[member] = nil
                s.current = (member + 1) % s.connections.count
            }
        }
        if let connection { _ = connection.close() }
    }

    /// A Put that fails after `timeoutMs` whatever the server does (the completion and the
    /// timer both run on the connection's event loop; the first one decides).
    private static func attempt(_ connection: GRPCClient, _ request: Etcdserverpb_PutRequest, timeoutMs: Int64) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let loop = connection.eventLoop
            loop.execute {
                let decided = NIOLoopBoundBox(false, eventLoop: loop)
                let timer = loop.scheduleTask(in: .milliseconds(timeoutMs)) {
                    if decided.value { return }
                    decided.value = true
                    continuation.resume(returning: false)
                }
                connection.unary("/etcdserverpb.KV/Put", request, timeout: .milliseconds(timeoutMs),
                                 responseType: Etcdserverpb_PutResponse.self) { result in
                    if decided.value { return }
                    decided.value = true
                    timer.cancel()
                    if case .success = result { continuation.resume(returning: true) } else { continuation.resume(returning: false) }
                }
            }
        }
    }
}
