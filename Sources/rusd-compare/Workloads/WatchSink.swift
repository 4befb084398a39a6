import ArgumentParser
import EngineAPI
import EtcdProto
import Foundation
import GRPCTransport
import NIOCore
import NIOPosix
import SwiftProtobuf
#if canImport(Glibc)
import Glibc
#endif

/// What a watch sink saw: counts, order violations and delivery latency.
struct WatchSinkResult: Codable, Sendable {
    var received = 0
    var outOfOrder = 0
    /// Watchers that received exactly the expected events, in revision order.
    var completeInOrder = 0
    var error: String?
    var delivery: LatencySummary
}

/// `rusd-compare watch-sink`: the watch side of the watch-fanout workload, in its own process
/// so that decoding millions of events does not starve the writers of CPU inside one process
/// (the writers and the watchers are different clients in a real cluster too). Opens the
/// watchers, prints `ready`, consumes until every watcher has `expect` events (or the timeout),
/// then prints one JSON line (`WatchSinkResult`). Values must start with their send time
/// (CLOCK_MONOTONIC nanoseconds, big-endian): the machine's clock is shared by both processes.
struct WatchSinkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch-sink",
        abstract: "Internal: the watchers of the watch-fanout workload (prints a JSON result).",
        shouldDisplay: false)

    @Option(help: "Endpoint, http://HOST:PORT.") var endpoint: String
    @Option(help: "Key prefix to watch.") var prefix: String
    @Option(help: "Number of watchers.") var watchers: Int
    @Option(help: "Connections the watchers are spread over.") var connections: Int = 10
    @Option(help: "Revision to watch from.") var startRevision: Int64
    @Option(help: "Events each watcher must receive.") var expect: Int
    @Option(help: "Give up after this many seconds.") var timeoutSeconds: Double = 120

    func run() async throws {
        guard let url = URL(string: endpoint), let host = url.host, let port = url.port else {
            throw SubprocessError(description: "bad endpoint \(endpoint)")
        }
        var clients: [GRPCClient] = []
        for _ in 0..<max(1, connections) {
            clients.append(try await GRPCClient.connect(host: host, port: port,
                                                        group: MultiThreadedEventLoopGroup.singleton).get())
        }
        let key = Array(prefix.utf8)
        var tallies: [WatcherTally] = []
        var calls: [ClientStreamingCall<Etcdserverpb_WatchRequest>] = []
        for i in 0..<watchers {
            let client = clients[i % clients.count]
            let tally = WatcherTally(expect: expect, done: client.eventLoop.makePromise())
            let call = client.bidirectionalStreaming(
                "/etcdserverpb.Watch/Watch", requestType: Etcdserverpb_WatchRequest.self,
                responseType: WatchResponseDigest.self) { tally.take($0) }
            call.status.whenComplete { result in
                tally.end(result.map { "watch stream ended: \($0.code) \($0.message)" })
            }
            var create = Etcdserverpb_WatchCreateRequest()
            create.key = Data(key)
            create.rangeEnd = Data(prefixEnd(key))
            create.startRevision = startRevision
            var request = Etcdserverpb_WatchRequest()
            request.requestUnion = .createRequest(create)
            call.send(request)
            tallies.append(tally)
            calls.append(call)
        }
        writeLine("ready")
        let timeoutNanos = UInt64(timeoutSeconds * 1e9)
        let timeout = Task {
            try await Task.sleep(nanoseconds: timeoutNanos)
            for t in tallies { t.end(.success("timed out after \(timeoutSeconds) s")) }
        }
        var all = LatencyHistogram()
        var result = WatchSinkResult(delivery: all.summary())
        for t in tallies {
            try? await t.done.futureResult.get()
            // The tally is final once `done` completed (on its event loop); read it there.
            let r = try await t.done.futureResult.eventLoop.submit { (t.latency, t.received, t.outOfOrder, t.error) }.get()
            all.merge(r.0)
            result.received += r.1
            result.outOfOrder += r.2
            if r.1 == expect && r.2 == 0 { result.completeInOrder += 1 }
            if result.error == nil { result.error = r.3 }
        }
        timeout.cancel()
        result.delivery = all.summary()
        for call in calls { call.cancel() }
        for c in clients { try? await c.close().get() }
        let json = try JSONEncoder().encode(result)
        writeLine(String(decoding: json, as: UTF8.self))
    }
}

/// One watcher's counts, updated on its connection's event loop only (the response callback
/// and `end` run there, and `run` reads it there after `done`).
final class WatcherTally: @unchecked Sendable {
    let expect: Int
    let done: EventLoopPromise<Void>
    var latency = LatencyHistogram()
    var received = 0
    var outOfOrder = 0
    var lastRevision: Int64 = 0
    var error: String?
    private var finished = false

    init(expect: Int, done: EventLoopPromise<Void>) {
        self.expect = expect
        self.done = done
    }

    func take(_ response: WatchResponseDigest) {
        guard !finished else { return }
        if response.canceled || response.compactRevision != 0 {
            end(.success("watch canceled: \(response.cancelReason) (compact revision \(response.compactRevision))"))
            return
        }
        let now = monotonicNanos()
        // Counted in locals, stored once per response.
        var received = self.received, outOfOrder = self.outOfOrder, lastRevision = self.lastRevision
        let complete = response.forEachEvent { modRevision, sent in
            if modRevision <= lastRevision { outOfOrder += 1 }
            lastRevision = modRevision
            if let sent { self.latency.record(nanos: now &- sent) }
            received += 1
        }
        self.received = received
        self.outOfOrder = outOfOrder
        self.lastRevision = lastRevision
        if !complete {
            end(.success("undecodable event"))
            return
        }
        if received >= expect { end(.success(nil)) }
    }

    /// Finishes the tally (nil: complete), once; a later call changes nothing.
    func end(_ outcome: Result<String?, any Error>) {
        done.futureResult.eventLoop.execute {
            guard !self.finished else { return }
            self.finished = true
            switch outcome {
            case .success(let message): if self.received < self.expect { self.error = message ?? self.error }
            case .failure(let e): if self.received < self.expect { self.error = "\(e)" }
            }
            self.done.succeed(())
        }
    }
}

/// etcd's WatchResponse decoded only as far as the sink needs: the cancel fields, and where
/// each event's encoding lies in the received bytes (parsed by `forEachEvent`, without
/// building messages or copying events).
struct WatchResponseDigest: GRPCDirectDecodable, Equatable {
    static let protoMessageName = "etcdserverpb.WatchResponse"
    var canceled = false
    var compactRevision: Int64 = 0
    var cancelReason = ""
    /// The received message and the ranges of its events (field 11) within `payload`'s
    /// readable bytes.
    var payload = ByteBuffer()
    var eventRanges: [Range<Int>] = []
    var unknownFields = SwiftProtobuf.UnknownStorage()

    init() {}

    init(grpcPayload payload: ByteBuffer) throws {
        self.payload = payload
        var canceled = false, compactRevision: Int64 = 0, reason: Range<Int>?
        var ranges: [Range<Int>] = []
        let ok = payload.withUnsafeReadableBytes { raw -> Bool in
            Self.forEachField(raw, 0..<raw.count) { number, field in
                switch (number, field) {
                case (4, .varint(let v)): canceled = v != 0
                case (5, .varint(let v)): compactRevision = Int64(bitPattern: v)
                case (6, .bytes(let r)): reason = r
                case (11, .bytes(let r)): ranges.append(r)
                default: break
                }
            }
        }
        guard ok else { throw SubprocessError(description: "malformed WatchResponse") }
        self.canceled = canceled
        self.compactRevision = compactRevision
        if let reason {
            cancelReason = payload.getString(at: payload.readerIndex + reason.lowerBound, length: reason.count) ?? ""
        }
        eventRanges = ranges
    }

    mutating func decodeMessage<D: SwiftProtobuf.Decoder>(decoder: inout D) throws {
        var m = Etcdserverpb_WatchResponse()
        try m.decodeMessage(decoder: &decoder)
        self = try Self(grpcPayload: ByteBuffer(bytes: try m.serializedBytes() as [UInt8]))
    }

    func traverse<V: SwiftProtobuf.Visitor>(visitor: inout V) throws {}

    func isEqualTo(message: any SwiftProtobuf.Message) -> Bool {
        (message as? WatchResponseDigest) == self
    }

    /// Visits each event's kv.mod_revision (Event field 2 -> KeyValue field 3) and, when
    /// kv.value (5) holds at least 8 bytes, their big-endian value (the send time). False if
    /// an event is malformed (the visit stops there).
    func forEachEvent(_ visit: (Int64, UInt64?) -> Void) -> Bool {
        payload.withUnsafeReadableBytes { raw -> Bool in
            for range in eventRanges {
                var kv: Range<Int>?
                guard Self.forEachField(raw, range, { number, field in
                    if number == 2, kv == nil, case .bytes(let r) = field { kv = r }
                }), let kv else { return false }
                var modRevision: Int64 = 0
                var stamp: UInt64?
                guard Self.forEachField(raw, kv, { number, field in
                    switch (number, field) {
                    case (3, .varint(let v)): modRevision = Int64(bitPattern: v)
                    case (5, .bytes(let r)) where r.count >= 8:
                        var s: UInt64 = 0
                        for i in r.lowerBound..<(r.lowerBound + 8) { s = s << 8 | UInt64(raw[i]) }
                        stamp = s
                    default: break
                    }
                }) else { return false }
                visit(modRevision, stamp)
            }
            return true
        }
    }

    private enum Field { case varint(UInt64), bytes(Range<Int>) }

    /// Visits the varint and length-delimited fields of the message in `range` (fixed-width
    /// fields are skipped); false when it is malformed.
    private static func forEachField(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>,
                                     _ visit: (UInt64, Field) -> Void) -> Bool {
        var reader = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[range]))
        while !reader.isAtEnd {
            guard let tag = reader.varint() else { return false }
            switch tag & 7 {
            case 0:
                guard let v = reader.varint() else { return false }
                visit(tag >> 3, .varint(v))
            case 2:
                guard let field = reader.lengthPrefixed() else { return false }
                let start = range.lowerBound + reader.position - field.count
                visit(tag >> 3, .bytes(start..<(start + field.count)))
            case 1:
                guard reader.fixed64() != nil else { return false }
            case 5:
                guard reader.fixed32() != nil else { return false }
            default:
                return false
            }
        }
        return true
    }
}

/// Writes `line` and a newline to stdout, unbuffered (the parent reads it through a pipe).
private func writeLine(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        offset += n
    }
}

/// A running `watch-sink` child process.
struct WatchSinkProcess {
    let pid: pid_t
    private let output: Int32

    /// Starts the sink and returns once it printed `ready` (its watchers exist).
    static func start(endpoint: String, prefix: String, watchers: Int, startRevision: Int64,
                      expect: Int) throws -> WatchSinkProcess {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SubprocessError(description: "pipe: \(String(cString: strerror(errno)))") }
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let pid: pid_t
        do {
            pid = try Subprocess.spawn(executable, [
                "watch-sink", "--endpoint", endpoint, "--prefix", prefix, "--watchers", String(watchers),
                "--start-revision", String(startRevision), "--expect", String(expect),
            ], stdoutFD: fds[1], stderrFD: 2)
        } catch {
            close(fds[0]); close(fds[1])
            throw error
        }
        close(fds[1])
        ChildProcessRegistry.shared.add(pid)
        let sink = WatchSinkProcess(pid: pid, output: fds[0])
        let first = sink.readLine()
        guard first == "ready" else {
            _ = sink.finish()
            throw SubprocessError(description: "watch-sink did not start: \(first ?? "(no output)")")
        }
        return sink
    }

    /// Waits for the sink to finish and returns its result.
    func finish() -> Result<WatchSinkResult, SubprocessError> {
        let line = readLine()
        let status = Subprocess.waitForExit(pid)
        ChildProcessRegistry.shared.remove(pid)
        close(output)
        guard let line, let result = try? JSONDecoder().decode(WatchSinkResult.self, from: Data(line.utf8)) else {
            return .failure(SubprocessError(description: "watch-sink exited with status \(status) without a result"))
        }
        return .success(result)
    }

    /// One line of the child's stdout (blocking), nil at end of file.
    private func readLine() -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let n = read(output, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
    }
}
