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
import WatchHub

/// etcd's `etcdserverpb.Watch` service: one `WatchSession` of the hub per Watch stream.
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
        return Service(name: "etcdserverpb.Watch", methods: [
            .bidirectionalStreaming("Watch") { (stream: ServerStream<EncodedWatchResponse>) -> BidiInbound<Etcdserverpb_WatchRequest> in
                let sink = WatchStreamSink(stream: stream, server: server, fragmentLimit: fragmentLimit)
                let session = hub.openSession(sink)
                stream.setOnWritable { session.resumeDelivery() }
                stream.setOnCancel { session.close() }
                return BidiInbound(onMessage: { request in
                    switch request.requestUnion {
                    case .createRequest(let c):
                        session.create(WatchCreateOptions(
                            key: [UInt8](c.key), rangeEnd: [UInt8](c.rangeEnd), startRevision: c.startRevision,
                            watchID: c.watchID, prevKV: c.prevKv,
                            filterPuts: c.filters.contains(.noput), filterDeletes: c.filters.contains(.nodelete),
                            progressNotify: c.progressNotify, fragment: c.fragment))
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

    init(stream: ServerStream<EncodedWatchResponse>, server: EtcdServer, fragmentLimit: Int) {
        self.stream = stream
        self.server = server
        self.fragmentLimit = fragmentLimit
    }

    func execute(_ work: @escaping @Sendable () -> Void) {
        stream.context.eventLoop.execute(work)
    }

    var isWritable: Bool { stream.isWritable }

    func send(_ r: WatchResponse) {
        var p = EncodedWatchResponse()
        p.header = server.header(revision: r.headerRevision)
        p.watchID = r.watchID
        p.created = r.created
        p.canceled = r.canceled
        p.cancelReason = r.cancelReason
        p.compactRevision = r.compactRevision
        // Encoded once per event list, shared by every watcher that gets the same events.
        p.events = r.eventList.derived { events in
            events.map { (try? Self.event($0).serializedBytes() as Data) ?? Data() }
        }
        if r.fragmentAllowed && p.events.count >= 2 {
            sendFragments(p)
        } else {
            stream.send(p)
        }
    }

    /// etcd's sendFragments: a response at or above the limit is split into responses of whole
    /// events, each below the limit (or holding a single event), all but the last with
    /// `fragment` set.
    private func sendFragments(_ p: EncodedWatchResponse) {
        let eventSizes = p.events.map { 1 + varintLength($0.count) + $0.count }
        var base = p
        base.events = []
        let baseSize = (try? base.serializedBytes() as [UInt8])?.count ?? 0
        guard baseSize + eventSizes.reduce(0, +) >= fragmentLimit else {
            stream.send(p)
            return
        }
        base.fragment = true
        var index = 0
        while index < p.events.count {
            var part = base
            var size = baseSize + 2   // the fragment flag
            while index < p.events.count {
                if !part.events.isEmpty && size + eventSizes[index] >= fragmentLimit { break }
                part.events.append(p.events[index])
                size += eventSizes[index]
                index += 1
            }
            if index == p.events.count { part.fragment = false }
            stream.send(part)
        }
    }

    private func varintLength(_ n: Int) -> Int {
        var v = UInt64(n), len = 1
        while v >= 0x80 { v >>= 7; len += 1 }
        return len
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
    /// Each an encoded `mvccpb.Event`.
    var events: [Data] = []
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
        events = try m.events.map { try $0.serializedBytes() }
    }

    func traverse<V: SwiftProtobuf.Visitor>(visitor: inout V) throws {
        try visitor.visitSingularMessageField(value: header, fieldNumber: 1)
        if watchID != 0 { try visitor.visitSingularInt64Field(value: watchID, fieldNumber: 2) }
        if created { try visitor.visitSingularBoolField(value: true, fieldNumber: 3) }
        if canceled { try visitor.visitSingularBoolField(value: true, fieldNumber: 4) }
        if compactRevision != 0 { try visitor.visitSingularInt64Field(value: compactRevision, fieldNumber: 5) }
        if !cancelReason.isEmpty { try visitor.visitSingularStringField(value: cancelReason, fieldNumber: 6) }
        if fragment { try visitor.visitSingularBoolField(value: true, fieldNumber: 7) }
        for e in events { try visitor.visitSingularBytesField(value: e, fieldNumber: 11) }
    }

    func isEqualTo(message: any SwiftProtobuf.Message) -> Bool {
        (message as? EncodedWatchResponse) == self
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(watchID)
        hasher.combine(events)
    }
}
