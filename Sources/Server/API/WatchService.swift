import EtcdProto
import EtcdServer
#if canImport(Glibc)
import Glibc
#endif
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
        let queuedBytesLimit = WatchStreamSink.queuedBytesLimitFromEnvironment()
        let lanes = WatchDeliveryLanes(policy: .yieldingToWrites(of: hub))
        return Service(name: "etcdserverpb.Watch", methods: [
            .bidirectionalStreaming("Watch") { (stream: ServerStream<EncodedWatchResponse>) -> BidiInbound<Etcdserverpb_WatchRequest> in
                let access = WatchStreamAccess(server: server, context: stream.context)
                let sink = WatchStreamSink(stream: stream, server: server, fragmentLimit: fragmentLimit,
                                           lane: lanes.lane(for: stream.context.eventLoop), access: access,
                                           queuedBytesLimit: queuedBytesLimit)
                let session = hub.openSession(sink)
                access.attach(session)
                sink.setResume { session.resumeDelivery() }
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
final class WatchStreamSink: WatchSink {
    let stream: ServerStream<EncodedWatchResponse>
    let server: EtcdServer
    let fragmentLimit: Int
    /// Delivery work of every Watch stream on this stream's event loop.
    let lane: WatchDeliveryLane
    /// Decides which responses the caller may see (auth).
    let access: WatchStreamAccess
    /// Resumes the session's delivery (set once, right after the session is opened).
    private let resume = Mutex<(@Sendable () -> Void)?>(nil)
    /// When set, the most bytes this stream may hold queued in the transport (handed over, not
    /// yet taken by HTTP/2) when its session sends the next batch; nil: up to the transport's
    /// high watermark. Every watcher's responses are its own encoded copy, so under a fan-out
    /// whose clients read slower than the hub produces, this queue times the watchers is what
    /// the server holds: with the transport's 64 KiB high watermark and 64 KiB responses,
    /// 1,000 watchers peaked at 215-239 MiB (etcd: 105-107 MiB).
    let queuedBytesLimit: Int?

    /// Experimental (issue 20.4): `RUSD_WATCH_STREAM_QUEUE_BYTES` (1 KiB at least), else nil.
    static func queuedBytesLimitFromEnvironment() -> Int? {
        guard let text = getenv("RUSD_WATCH_STREAM_QUEUE_BYTES"), let bytes = Int(String(cString: text)),
              bytes >= 1024 else { return nil }
        return bytes
    }

    init(stream: ServerStream<EncodedWatchResponse>, server: EtcdServer, fragmentLimit: Int,
         lane: WatchDeliveryLane, access: WatchStreamAccess, queuedBytesLimit: Int? = nil) {
        self.stream = stream
        self.server = server
        self.fragmentLimit = fragmentLimit
        self.lane = lane
        self.access = access
        self.queuedBytesLimit = queuedBytesLimit
    }

    func execute(_ work: @escaping @Sendable () -> Void) {
        lane.execute(work)
    }

    func setResume(_ resume: @escaping @Sendable () -> Void) {
        self.resume.withLock { $0 = resume }
    }

    /// False while the transport is above its high watermark (it calls `onWritable` later) or
    /// holds more than `queuedBytesLimit` (when set) of this stream (the lane polls it and resumes the
    /// session once the transport took enough, or the stream ended).
    var isWritable: Bool {
        guard stream.isWritable else { return false }
        guard let limit = queuedBytesLimit, stream.pendingBytes > limit,
              let resume = resume.withLock({ $0 }) else { return true }
        let stream = self.stream
        lane.park(ObjectIdentifier(self), ready: {
            stream.pendingBytes <= limit || stream.isCancelled || !stream.isWritable
        }, resume: resume)
        return false
    }

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
            p.eventRecords = encoded.map { e, range in e.records(range) }
            stream.send(p)
        }
    }

    /// etcd's sendFragments: a response at or above the limit is split into responses of whole
    /// events, each below the limit (or holding a single event), all but the last with
    /// `fragment` set. `records` holds one encoded event each.
    private func sendFragments(_ base: EncodedWatchResponse, _ records: [Data]) {
        var base = base
        let baseSize = (try? base.serializedBytes() as [UInt8])?.count ?? 0
        guard baseSize + records.reduce(0, { $0 + $1.count }) >= fragmentLimit else {
            base.eventRecords = records
            stream.send(base)
            return
        }
        base.fragment = true
        var index = 0
        while index < records.count {
            var part = base
            var size = baseSize + 2   // the fragment flag
            while index < records.count {
                if !part.eventRecords.isEmpty && size + records[index].count >= fragmentLimit { break }
                part.eventRecords.append(records[index])
                size += records[index].count
                index += 1
            }
            if index == records.count { part.fragment = false }
            stream.send(part)
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

/// etcd's WatchResponse with its events already encoded: the bytes on the wire are those of
/// `Etcdserverpb_WatchResponse` (an embedded message and a bytes field share one wire type),
/// but an event list is encoded once for all the watchers that receive it rather than once per
/// watcher. Only ever serialized.
struct EncodedWatchResponse: SwiftProtobuf.Message, Equatable {
    static let protoMessageName = "etcdserverpb.WatchResponse"
    var header = Etcdserverpb_ResponseHeader()
    var watchID: Int64 = 0
    var created = false
    var canceled = false
    var compactRevision: Int64 = 0
    var cancelReason = ""
    var fragment = false
    /// `events` (field 11) as they go on the wire: each element one or more whole
    /// length-delimited field records of encoded `mvccpb.Event`s (see `EncodedEvents`).
    var eventRecords: [Data] = []
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
        let encoded = EncodedEvents(try m.events.map { try $0.serializedBytes() as [UInt8] })
        eventRecords = (0..<encoded.count).map { encoded.record($0) }
    }

    func traverse<V: SwiftProtobuf.Visitor>(visitor: inout V) throws {
        try visitor.visitSingularMessageField(value: header, fieldNumber: 1)
        if watchID != 0 { try visitor.visitSingularInt64Field(value: watchID, fieldNumber: 2) }
        if created { try visitor.visitSingularBoolField(value: true, fieldNumber: 3) }
        if canceled { try visitor.visitSingularBoolField(value: true, fieldNumber: 4) }
        if compactRevision != 0 { try visitor.visitSingularInt64Field(value: compactRevision, fieldNumber: 5) }
        if !cancelReason.isEmpty { try visitor.visitSingularStringField(value: cancelReason, fieldNumber: 6) }
        if fragment { try visitor.visitSingularBoolField(value: true, fieldNumber: 7) }
        // Already field records: written as they are (the visitor's raw-bytes entry point).
        for r in eventRecords { try visitor.visitUnknown(bytes: r) }
    }

    func isEqualTo(message: any SwiftProtobuf.Message) -> Bool {
        (message as? EncodedWatchResponse) == self
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(watchID)
        hasher.combine(eventRecords)
    }
}

/// The wire encoding of an event list, made once and shared by every response that carries
/// the list: each event as a record of WatchResponse's `events` field (tag, length, encoded
/// `mvccpb.Event`), back to back.
struct EncodedEvents: Sendable {
    /// Field 11, length-delimited.
    static let tag: UInt8 = 11 << 3 | 2
    let records: Data
    /// Where each event's record ends in `records`.
    let ends: [Int]

    init(_ events: [Event]) {
        self.init(events.map { (try? WatchStreamSink.event($0).serializedBytes() as [UInt8]) ?? [] })
    }

    /// From encoded `mvccpb.Event`s.
    init(_ encodedEvents: [[UInt8]]) {
        var out: [UInt8] = []
        out.reserveCapacity(encodedEvents.reduce(0) { $0 + $1.count + 6 })
        var ends: [Int] = []
        ends.reserveCapacity(encodedEvents.count)
        for e in encodedEvents {
            out.append(Self.tag)
            var n = UInt64(e.count)
            while n >= 0x80 {
                out.append(UInt8(truncatingIfNeeded: n) | 0x80)
                n >>= 7
            }
            out.append(UInt8(n))
            out += e
            ends.append(out.count)
        }
        records = Data(out)
        self.ends = ends
    }

    var count: Int { ends.count }

    /// The records of the events in `range` (sharing `records`' storage).
    func records(_ range: Range<Int>) -> Data {
        if range.count == ends.count { return records }
        return records[(range.lowerBound == 0 ? 0 : ends[range.lowerBound - 1])..<ends[range.upperBound - 1]]
    }

    /// Event `i`'s record alone.
    func record(_ i: Int) -> Data {
        records(i..<(i + 1))
    }
}
