@testable import EtcdAPI
import EtcdProto
@testable import GRPCTransport
import MVCC
import NIOCore
import NIOPosix
import SwiftProtobuf
@testable import WatchHub
import XCTest

/// Watch fan-out memory (issue 20.4): the responses of every watcher that gets one event list
/// carry that list's single encoding by reference; only their heads are per stream. The wire
/// bytes are judged by SwiftProtobuf's generated `Etcdserverpb_WatchResponse` decoder.
final class WatchSharedEncodingTests: XCTestCase {
    /// Records what a Watch stream hands to its call.
    private final class RecordingCall: CallSink, @unchecked Sendable {
        let context: CallContext!
        let highWatermark = 64 << 10
        let lowWatermark = 16 << 10
        var observer: CallObserver?
        var hasEnded: Bool { false }
        var messages: [[ByteBuffer]] = []

        init(loop: any EventLoop) {
            context = CallContext(method: "/etcdserverpb.Watch/Watch", metadata: [:], deadline: nil,
                                  eventLoop: loop, peerCommonName: nil, remoteAddress: nil)
        }

        func respond(message: ByteBuffer) { messages.append([message]) }
        func enqueue(message: ByteBuffer) { messages.append([message]) }
        func enqueue(message: ByteBuffer, tail: [ByteBuffer]) { messages.append([message] + tail) }
        func finish(_ status: GRPCStatus) {}
        func noteStarted() {}
    }

    private func event(_ key: String, _ value: String, revision: Int64) -> Event {
        Event(kind: .put, kv: KeyValue(key: Array(key.utf8), value: Array(value.utf8), createRevision: revision,
                                       modRevision: revision, version: 1, lease: 0), prevKV: nil)
    }

    /// Decodes one queued message (gRPC prefix + protobuf) as etcd's WatchResponse.
    private func decode(_ parts: [ByteBuffer]) throws -> Etcdserverpb_WatchResponse {
        var joined = ByteBuffer()
        for var p in parts { joined.writeBuffer(&p) }
        let flag = joined.readInteger(as: UInt8.self)
        let length = joined.readInteger(as: UInt32.self)
        XCTAssertEqual(flag, 0)
        XCTAssertEqual(length.map { Int($0) }, joined.readableBytes)
        return try Etcdserverpb_WatchResponse(serializedBytes: Array(joined.readableBytesView))
    }

    func testWatchersOfOneListShareItsEncodingAndDecodeAsEtcdsResponse() throws {
        let server = try makeServer()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let lane = WatchDeliveryLane(eventLoop: loop, policy: WatchDeliveryPolicy(
            writesFirst: { false }, committedRevisions: { 0 }))
        let list = EventList((2...40).map { event("/fan/\($0)", String(repeating: "v", count: $0 * 7), revision: Int64($0)) })
        let calls = try loop.submit { () -> [RecordingCall] in
            var calls: [RecordingCall] = []
            for id in Int64(0)..<3 {
                let call = RecordingCall(loop: loop)
                let stream = ServerStream<EncodedWatchResponse>(call: call, context: call.context)
                let sink = WatchStreamSink(stream: stream, server: server, fragmentLimit: 1 << 20, lane: lane,
                                           access: WatchStreamAccess(server: server, context: call.context))
                var r = WatchResponse(watchID: id, headerRevision: 40)
                // Watcher 2 catches up from revision 10: a slice of the same list.
                r.setEvents([id == 2 ? EventSlice(list, 8..<list.events.count) : EventSlice(list)])
                sink.send(r)
                calls.append(call)
            }
            return calls
        }.wait()
        let tails = calls.map { $0.messages.first?.dropFirst().first }
        let storage = try tails.map { try XCTUnwrap($0).withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } }
        XCTAssertEqual(storage[0], storage[1], "two watchers of one list hold two encodings")
        XCTAssertGreaterThan(storage[2], storage[0], "the slice should point into the shared encoding")
        for (id, call) in calls.enumerated() {
            XCTAssertEqual(call.messages.count, 1)
            let decoded = try decode(call.messages[0])
            XCTAssertEqual(decoded.watchID, Int64(id))
            XCTAssertEqual(decoded.header.revision, 40)
            XCTAssertEqual(decoded.header.clusterID, 0x1234)
            let first = id == 2 ? 10 : 2
            XCTAssertEqual(decoded.events.map(\.kv.modRevision), (first...40).map { Int64($0) })
            XCTAssertEqual(decoded.events.map { String(decoding: $0.kv.key, as: UTF8.self) }, (first...40).map { "/fan/\($0)" })
            XCTAssertEqual(decoded.events.map(\.kv.value.count), (first...40).map { $0 * 7 })
        }
    }

    /// With `fragment`, a response above the limit goes out in parts of whole events (etcd's
    /// sendFragments), each part's events still slices of the shared encoding.
    func testFragmentsCarrySlicesOfTheSharedEncoding() throws {
        let server = try makeServer()
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let lane = WatchDeliveryLane(eventLoop: loop, policy: WatchDeliveryPolicy(
            writesFirst: { false }, committedRevisions: { 0 }))
        let list = EventList((2...9).map { event("/big/\($0)", String(repeating: "w", count: 1000), revision: Int64($0)) })
        let call = RecordingCall(loop: loop)
        try loop.submit {
            let stream = ServerStream<EncodedWatchResponse>(call: call, context: call.context)
            let sink = WatchStreamSink(stream: stream, server: server, fragmentLimit: 2500, lane: lane,
                                       access: WatchStreamAccess(server: server, context: call.context))
            var r = WatchResponse(watchID: 7, headerRevision: 9)
            r.setEvents([EventSlice(list)])
            r.fragmentAllowed = true
            sink.send(r)
        }.wait()
        let decoded = try call.messages.map(decode)
        XCTAssertEqual(decoded.count, 4)   // two events of ~1 KiB per part below 2,500 bytes
        XCTAssertEqual(decoded.map(\.fragment), [true, true, true, false])
        XCTAssertEqual(decoded.flatMap(\.events).map(\.kv.modRevision), (2...9).map { Int64($0) })
        let encoded = list.derived { EncodedEvents($0) }
        let base = encoded.records.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
        for parts in call.messages {
            for tail in parts.dropFirst() {
                let at = tail.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
                XCTAssertTrue(at >= base && at < base + UInt(encoded.records.readableBytes), "a fragment's event was copied")
            }
        }
    }
}
