import EtcdProto
import Foundation
import GRPCTransport
import NIOCore
import NIOPosix
import SwiftProtobuf

/// `EtcdClient` over our GRPCTransport client: one HTTP/2 connection, requests multiplexed as
/// streams, etcd's protobuf messages (EtcdProto). This is the client the workloads measure with.
/// Unary calls time out after 60 s (grpc-timeout), so a stuck server fails a run instead of
/// hanging the whole comparison.
struct GRPCEtcdClient: EtcdClient {
    let connection: GRPCClient

    private func call<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ path: String, _ request: Request, _ response: Response.Type) async throws -> Response {
        try await connection.unary(path, request, timeout: .seconds(60), responseType: Response.self).get()
    }

    func put(key: [UInt8], value: [UInt8], lease: Int64) async throws -> Int64 {
        var request = Etcdserverpb_PutRequest()
        request.key = Data(key)
        request.value = Data(value)
        request.lease = lease
        return try await call("/etcdserverpb.KV/Put", request, Etcdserverpb_PutResponse.self).header.revision
    }

    func range(key: [UInt8], rangeEnd: [UInt8], limit: Int64, revision: Int64,
               keysOnly: Bool, countOnly: Bool) async throws -> RangeResult {
        var request = Etcdserverpb_RangeRequest()
        request.key = Data(key)
        request.rangeEnd = Data(rangeEnd)
        request.limit = limit
        request.revision = revision
        request.keysOnly = keysOnly
        request.countOnly = countOnly
        let response = try await call("/etcdserverpb.KV/Range", request, Etcdserverpb_RangeResponse.self)
        return RangeResult(kvs: response.kvs.map(Self.keyValue), count: response.count, more: response.more,
                           revision: response.header.revision)
    }

    func txn(compares: [TxnCompare], success: [TxnOp], failure: [TxnOp]) async throws -> TxnResult {
        var request = Etcdserverpb_TxnRequest()
        request.compare = compares.map { compare in
            var c = Etcdserverpb_Compare()
            c.result = .equal
            switch compare {
            case .modRevision(let key, let revision):
                c.target = .mod
                c.key = Data(key)
                c.targetUnion = .modRevision(revision)
            case .version(let key, let version):
                c.target = .version
                c.key = Data(key)
                c.targetUnion = .version(version)
            }
            return c
        }
        request.success = success.map(Self.requestOp)
        request.failure = failure.map(Self.requestOp)
        let response = try await call("/etcdserverpb.KV/Txn", request, Etcdserverpb_TxnResponse.self)
        var kvs: [KeyValue] = []
        for op in response.responses {
            if case .responseRange(let range)? = op.response { kvs = range.kvs.map(Self.keyValue); break }
        }
        return TxnResult(succeeded: response.succeeded, revision: response.header.revision, rangeKVs: kvs)
    }

    func delete(key: [UInt8], rangeEnd: [UInt8]) async throws -> Int64 {
        var request = Etcdserverpb_DeleteRangeRequest()
        request.key = Data(key)
        request.rangeEnd = Data(rangeEnd)
        return try await call("/etcdserverpb.KV/DeleteRange", request, Etcdserverpb_DeleteRangeResponse.self).deleted
    }

    func watch(key: [UInt8], rangeEnd: [UInt8], startRevision: Int64, prevKV: Bool) async throws -> WatchHandle {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: [WatchEvent].self)
        let streaming = connection.bidirectionalStreaming(
            "/etcdserverpb.Watch/Watch", requestType: Etcdserverpb_WatchRequest.self,
            responseType: Etcdserverpb_WatchResponse.self
        ) { response in
            if response.canceled || response.compactRevision != 0 {
                continuation.finish(throwing: SubprocessError(description:
                    "watch canceled: \(response.cancelReason.isEmpty ? "compacted at \(response.compactRevision)" : response.cancelReason)"))
                return
            }
            guard !response.events.isEmpty else { return }
            continuation.yield(response.events.map { event in
                WatchEvent(kind: event.type == .delete ? .delete : .put, kv: Self.keyValue(event.kv),
                           prevKV: event.hasPrevKv ? Self.keyValue(event.prevKv) : nil)
            })
        }
        streaming.status.whenComplete { result in
            switch result {
            case .success(let status) where status.code != .ok && status.code != .cancelled:
                continuation.finish(throwing: status)
            default:
                continuation.finish()
            }
        }
        var create = Etcdserverpb_WatchCreateRequest()
        create.key = Data(key)
        create.rangeEnd = Data(rangeEnd)
        create.startRevision = startRevision
        create.prevKv = prevKV
        var request = Etcdserverpb_WatchRequest()
        request.requestUnion = .createRequest(create)
        streaming.send(request)
        return WatchHandle(events: stream, cancel: {
            streaming.cancel()
            continuation.finish()
        })
    }

    func leaseGrant(ttl: Int64) async throws -> Int64 {
        var request = Etcdserverpb_LeaseGrantRequest()
        request.ttl = ttl
        let response = try await call("/etcdserverpb.Lease/LeaseGrant", request, Etcdserverpb_LeaseGrantResponse.self)
        if !response.error.isEmpty { throw SubprocessError(description: "lease grant: \(response.error)") }
        return response.id
    }

    func compact(revision: Int64, physical: Bool) async throws {
        var request = Etcdserverpb_CompactionRequest()
        request.revision = revision
        request.physical = physical
        _ = try await call("/etcdserverpb.KV/Compact", request, Etcdserverpb_CompactionResponse.self)
    }

    func status() async throws -> ServerStatus {
        let response = try await call("/etcdserverpb.Maintenance/Status", Etcdserverpb_StatusRequest(),
                                      Etcdserverpb_StatusResponse.self)
        return ServerStatus(version: response.version, dbSize: response.dbSize, revision: response.header.revision)
    }

    func defragment() async throws {
        _ = try await call("/etcdserverpb.Maintenance/Defragment", Etcdserverpb_DefragmentRequest(),
                           Etcdserverpb_DefragmentResponse.self)
    }

    func close() async {
        try? await connection.close().get()
    }

    func runClosedLoop(_ load: ClosedLoopLoad) async throws -> LatencyHistogram {
        try await GRPCClosedLoop.run(load, on: connection)
    }

    static func keyValue(_ kv: Mvccpb_KeyValue) -> KeyValue {
        KeyValue(key: [UInt8](kv.key), value: [UInt8](kv.value), createRevision: kv.createRevision,
                 modRevision: kv.modRevision, version: kv.version, lease: kv.lease)
    }

    static func requestOp(_ op: TxnOp) -> Etcdserverpb_RequestOp {
        var result = Etcdserverpb_RequestOp()
        switch op {
        case .put(let key, let value, let lease):
            var put = Etcdserverpb_PutRequest()
            put.key = Data(key)
            put.value = Data(value)
            put.lease = lease
            result.request = .requestPut(put)
        case .range(let key, let rangeEnd, let limit):
            var range = Etcdserverpb_RangeRequest()
            range.key = Data(key)
            range.rangeEnd = Data(rangeEnd)
            range.limit = limit
            result.request = .requestRange(range)
        case .delete(let key, let rangeEnd):
            var delete = Etcdserverpb_DeleteRangeRequest()
            delete.key = Data(key)
            delete.rangeEnd = Data(rangeEnd)
            result.request = .requestDeleteRange(delete)
        }
        return result
    }
}

/// Connects `GRPCEtcdClient`s on NIO's shared event loop group.
struct GRPCEtcdClientFactory: EtcdClientFactory {
    var name: String { "GRPCTransport (persistent HTTP/2 connections)" }

    func connect(endpoint: String) async throws -> any EtcdClient {
        guard let url = URL(string: endpoint), let host = url.host, let port = url.port else {
            throw SubprocessError(description: "bad endpoint \(endpoint)")
        }
        let connection = try await GRPCClient.connect(host: host, port: port,
                                                      group: MultiThreadedEventLoopGroup.singleton).get()
        return GRPCEtcdClient(connection: connection)
    }
}
