import EtcdProto
import EtcdServer
import Foundation
import GRPCTransport
import MVCC
import NIOCore
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
            .bidirectionalStreaming("Watch") { (stream: ServerStream<Etcdserverpb_WatchResponse>) -> BidiInbound<Etcdserverpb_WatchRequest> in
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
    let stream: ServerStream<Etcdserverpb_WatchResponse>
    let server: EtcdServer
    let fragmentLimit: Int

    init(stream: ServerStream<Etcdserverpb_WatchResponse>, server: EtcdServer, fragmentLimit: Int) {
        self.stream = stream
        self.server = server
        self.fragmentLimit = fragmentLimit
    }

    func execute(_ work: @escaping @Sendable () -> Void) {
        stream.context.eventLoop.execute(work)
    }

    var isWritable: Bool { stream.isWritable }

    func send(_ r: WatchResponse) {
        var p = Etcdserverpb_WatchResponse()
        p.header = server.header(revision: r.headerRevision)
        p.watchID = r.watchID
        p.created = r.created
        p.canceled = r.canceled
        p.cancelReason = r.cancelReason
        p.compactRevision = r.compactRevision
        p.events = r.events.map(Self.event)
        if r.fragmentAllowed && p.events.count >= 2 {
            sendFragments(p)
        } else {
            stream.send(p)
        }
    }

    /// etcd's sendFragments: a response at or above the limit is split into responses of whole
    /// events, each below the limit (or holding a single event), all but the last with
    /// `fragment` set.
    private func sendFragments(_ p: Etcdserverpb_WatchResponse) {
        let eventSizes = p.events.map { e -> Int in
            let n = (try? e.serializedBytes() as [UInt8])?.count ?? 0
            return 1 + varintLength(n) + n
        }
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
