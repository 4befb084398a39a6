import EtcdProto
import EtcdServer
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import GRPCTransport
import MVCC
import NIOCore
import SwiftProtobuf
import Synchronization
import WatchHub

/// etcd's `etcdserverpb.Watch` service: one `WatchSession` of the hub per Watch stream.
///
/// Auth: `WatchStreamAccess` checks each create (READ on the whole range) and re-checks open
/// watches after the auth state changes.
///
/// Requests are handed to the session as they arrive (on the connection's event loop);
/// responses are written on that event loop while the stream is writable (the hub holds the
/// rest, bounded, and falls back to history reads for watchers that fall behind).
public enum WatchService {
    /// etcd adds this to --max-request-bytes for the largest response it sends unfragmented
    /// to a watcher that asked for `fragment`.
    static let grpcOverheadBytes = 512 * 1024

    public static func make(_ server: EtcdServer, hub: WatchHub) -> Service {
        let fragmentLimit = server.config.maxRequestBytes + grpcOverheadBytes
        let lanes = WatchDeliveryLanes(policy: .yieldingToWrites(of: hub))
        return Service(name: "etcdserverpb.Watch", methods: [
            .bidirectionalStreaming("Watch") { (stream: ServerStream<EncodedWatchResponse>) -> BidiInbound<Etcdserverpb_WatchRequest> in
                let access = WatchStreamAccess(server: server, context: stream.context)
                let sink = WatchStreamSink(stream: stream, server: server, fragmentLimit: fragmentLimit,
                                           lane: lanes.lane(for: stream.context.eventLoop), access: access)
                let session = hub.openSession(sink)
                access.attach(session)
                stream.setOnWritable { session.resumeDelivery() }
                stream.setOnCancel { session.close() }
                return BidiInbound(onMessage: { request in
                    switch request.requestUnion {
                    case .createRequest(let c):
                        access.create(WatchCreateOptions(
                            key: [UInt8](c.key), rangeEnd: [UInt8](c.rangeEnd), startRevision: c.startRevision,
                            watchID: c.watchID, prevKV: c.prevKv,
                            filterPuts: c.filters.contains(.noput), filterDeletes: c.filters.contains(.nodelete),
                            progressNotify: c.progressNotify, fragment: c.fragment), on: session)
                    case .cancelRequest(let c):
                        session.cancel(c.watchID)
                    case .progressRequest:
                        session.requestProgress()
                    case nil:
                        break   // etcd ignores an empty request
                    }
                }, onEnd: {
                    // etcd keeps sending after the client half-closes, until it cancels.
                })
            },
        ])
    }
}

/// Writes a session's responses to its gRPC stream, on the stream's event loop.
///
/// Memory: a response's events are not copied per stream. Each event list is encoded once
/// (`EncodedEvents`, one buffer) and every response that carries some of its events queues
/// only its own small head (gRPC prefix, header, watch ID) followed by slices of that buffer
/// (`ServerStream.send(_:sharedTail:)`), which HTTP/2 reads its DATA frames from. So the
/// transport's per-stream queue (up to its high watermark) holds references, and a fan-out of
/// one prefix to a thousand slow streams holds each event's encoding once, not once per
/// stream (watch-fanout, 1,000 streams: peak RSS 215-239 MiB with a copy per stream; see
/// reports/2026-12-07-vm-watch-memory-2.md).
final class WatchStreamSink: WatchSink {
    let stream: ServerStream<EncodedWatchResponse>
    let server: EtcdServer
    let fragmentLimit: Int
    /// Delivery work of every Watch stream on this stream's event loop.
    let lane: WatchDeliveryLane
    /// Decides which responses the caller may see (auth).
    let access: WatchStreamAccess

    init(stream: ServerStream<EncodedWatchResponse>, server: EtcdServer, fragmentLimit: Int,
         lane: WatchDeliveryLane, access: WatchStreamAccess) {
        self.stream = stream
        self.server = server
        self.fragmentLimit = fragmentLimit
        self.lane = lane
        self.access = access
    }

    func execute(_ work: @escaping @Sendable () -> Void) {
        lane.execute(work)
    }

    /// False while the transport is above its high watermark (it calls `onWritable` later).
    var isWritable: Bool { stream.isWritable }

    func send(_ r: WatchResponse) {
        guard access.admits(r, cancelVia: stream) else { return }
        var p = EncodedWatchResponse()
        p.header = server.header(revision: r.headerRevision)
        p.watchID = r.watchID
        p.created = r.created
        p.canceled = r.canceled
        p.cancelReason = r.cancelReason
        p.compactRevision = r.compactRevision
        let eventCount = r.eventSlices.reduce(0) { $0 + $1.range.count }
        lane.charge(eventCount)
        // Encoded once per event list, shared by every watcher that gets any of its events.
        let encoded = r.eventSlices.map { ($0.list.derived { EncodedEvents($0) }, $0.range) }
        if r.fragmentAllowed && eventCount >= 2 {
            sendFragments(p, encoded.flatMap { e, range in range.map { e.record($0) } })
        } else {
            stream.send(p, sharedTail: encoded.map { e, range in e.records(range) })
        }
    }

    /// etcd's sendFragments: a response at or above the limit is split into responses of whole
    /// events, each below the limit (or holding a single event), all but the last with
    /// `fragment` set. `records` holds one encoded event each (slices of shared buffers).
    private func sendFragments(_ base: EncodedWatchResponse, _ records: [ByteBuffer]) {
        var base = base
        let baseSize = (try? base.serializedBytes() as [UInt8])?.count ?? 0
        guard baseSize + records.reduce(0, { $0 + $1.readableBytes }) >= fragmentLimit else {
            stream.send(base, sharedTail: records)
            return
        }
        base.fragment = true
        var index = 0
        while index < records.count {
            var part = base
            var size = baseSize + 2   // the fragment flag
            var tail: [ByteBuffer] = []
            while index < records.count {
                if !tail.isEmpty && size + records[index].readableBytes >= fragmentLimit { break }
                tail.append(records[index])
                size += records[index].readableBytes
                index += 1
            }
            if index == records.count { part.fragment = false }
            stream.send(part, sharedTail: tail)
        }
    }

    static func keyValue(_ kv: KeyValue) -> Mvccpb_KeyValue {
        var p = Mvccpb_KeyValue()
        p.key = Data(kv.key)
        p.value = Data(kv.value)
        p.createRevision = kv.createRevision
        p.modRevision = kv.modRevision
        p.version = kv.version
        p.lease = kv.lease
        return p
    }

    static func event(_ e: Event) -> Mvccpb_Event {
        var p = Mvccpb_Event()
        p.type = e.kind == .put ? .put : .delete
        p.kv = keyValue(e.kv)
        if let prev = e.prevKV { p.prevKv = keyValue(prev) }
        return p
    }
}

/// etcd's WatchResponse without its events, which follow it on the wire as records encoded
/// once for every watcher that receives them (`EncodedEvents`, sent as the shared tail of
/// `ServerStream.send(_:sharedTail:)`): the bytes on the wire are those of
/// `Etcdserverpb_WatchResponse`. Only ever serialized; decoding keeps the other fields.
struct EncodedWatchResponse: SwiftProtobuf.Message, Equatable {
    static let protoMessageName = "etcdserverpb.WatchResponse"
    var header = Etcdserverpb_ResponseHeader()
    var watchID: Int64 = 0
    var created = false
    var canceled = false
    var compactRevision: Int64 = 0
    var cancelReason = ""
    var fragment = false
    var unknownFields = SwiftProtobuf.UnknownStorage()

    init() {}

    mutating func decodeMessage<D: SwiftProtobuf.Decoder>(decoder: inout D) throws {
        var m = Etcdserverpb_WatchResponse()
        try m.decodeMessage(decoder: &decoder)
        header = m.header
        watchID = m.watchID
        created = m.created
        canceled = m.canceled
        compactRevision = m.compactRevision
        cancelReason = m.cancelReason
        fragment = m.fragment
    }

    func traverse<V: SwiftProtobuf.Visitor>(visitor: inout V) throws {
        try visitor.visitSingularMessageField(value: header, fieldNumber: 1)
        if watchID != 0 { try visitor.visitSingularInt64Field(value: watchID, fieldNumber: 2) }
        if created { try visitor.visitSingularBoolField(value: true, fieldNumber: 3) }
        if canceled { try visitor.visitSingularBoolField(value: true, fieldNumber: 4) }
        if compactRevision != 0 { try visitor.visitSingularInt64Field(value: compactRevision, fieldNumber: 5) }
        if !cancelReason.isEmpty { try visitor.visitSingularStringField(value: cancelReason, fieldNumber: 6) }
        if fragment { try visitor.visitSingularBoolField(value: true, fieldNumber: 7) }
    }

    func isEqualTo(message: any SwiftProtobuf.Message) -> Bool {
        (message as? EncodedWatchResponse) == self
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(watchID)
        hasher.combine(header.revision)
    }
}

/// The wire encoding of an event list, made once and shared by every response that carries
/// the list: each event as a record of WatchResponse's `events` field (tag, length, encoded
/// `mvccpb.Event`), back to back in one buffer, which every stream's queue references (never
/// copies) until HTTP/2 has taken its part.
struct EncodedEvents: Sendable {
    /// Field 11, length-delimited.
    static let tag: UInt8 = 11 << 3 | 2
    let records: ByteBuffer
    /// Where each event's record ends in `records`.
    let ends: [Int]

    init(_ events: [Event]) {
        self.init(events.map { (try? WatchStreamSink.event($0).serializedBytes() as [UInt8]) ?? [] })
    }

    /// From encoded `mvccpb.Event`s.
    init(_ encodedEvents: [[UInt8]]) {
        var out = ByteBuffer()
        out.reserveCapacity(encodedEvents.reduce(0) { $0 + $1.count + 6 })
        var ends: [Int] = []
        ends.reserveCapacity(encodedEvents.count)
        for e in encodedEvents {
            out.writeInteger(Self.tag)
            var n = UInt64(e.count)
            while n >= 0x80 {
                out.writeInteger(UInt8(truncatingIfNeeded: n) | 0x80)
                n >>= 7
            }
            out.writeInteger(UInt8(n))
            out.writeBytes(e)
            ends.append(out.readableBytes)
        }
        records = out
        self.ends = ends
    }

    var count: Int { ends.count }

    /// The records of the events in `range` (sharing `records`' storage).
    func records(_ range: Range<Int>) -> ByteBuffer {
        guard !range.isEmpty else { return ByteBuffer() }
        if range.count == ends.count { return records }
        let start = range.lowerBound == 0 ? 0 : ends[range.lowerBound - 1]
        return records.getSlice(at: records.readerIndex + start, length: ends[range.upperBound - 1] - start) ?? ByteBuffer()
    }

    /// Event `i`'s record alone.
    func record(_ i: Int) -> ByteBuffer {
        records(i..<(i + 1))
    }
}
