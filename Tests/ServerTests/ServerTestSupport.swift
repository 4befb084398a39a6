import Dispatch
import EngineAPI
import EtcdProto
import EtcdServer
import Foundation
import InMemoryEngine
import Synchronization
import XCTest

/// Blocking wrappers over the facade's completion-based writes, for tests.
extension EtcdServer {
    func wait<T: Sendable>(_ start: (@escaping @Sendable (Result<T, EtcdError>) -> Void) -> Void) throws -> T {
        let box = Mutex<Result<T, EtcdError>?>(nil)
        let sem = DispatchSemaphore(value: 0)
        start { r in
            box.withLock { $0 = r }
            sem.signal()
        }
        guard sem.wait(timeout: .now() + 20) == .success else { throw EtcdError.timeout }
        return try box.withLock { $0! }.get()
    }

    @discardableResult
    func putSync(_ k: String, _ v: String, lease: Int64 = 0, prevKV: Bool = false) throws -> Etcdserverpb_PutResponse {
        var r = Etcdserverpb_PutRequest()
        r.key = Data(k.utf8)
        r.value = Data(v.utf8)
        r.lease = lease
        r.prevKv = prevKV
        return try putSync(r)
    }
    func putSync(_ r: Etcdserverpb_PutRequest) throws -> Etcdserverpb_PutResponse {
        try wait { put(r, completion: $0) }
    }
    func deleteSync(_ r: Etcdserverpb_DeleteRangeRequest) throws -> Etcdserverpb_DeleteRangeResponse {
        try wait { deleteRange(r, completion: $0) }
    }
    func txnSync(_ r: Etcdserverpb_TxnRequest) throws -> Etcdserverpb_TxnResponse {
        try wait { txn(r, completion: $0) }
    }
    func compactSync(_ rev: Int64, physical: Bool = false) throws -> Etcdserverpb_CompactionResponse {
        var r = Etcdserverpb_CompactionRequest()
        r.revision = rev
        r.physical = physical
        return try wait { compact(r, completion: $0) }
    }
    func get(_ k: String, end: String? = nil, _ configure: (inout Etcdserverpb_RangeRequest) -> Void = { _ in }) throws -> Etcdserverpb_RangeResponse {
        var r = Etcdserverpb_RangeRequest()
        r.key = Data(k.utf8)
        if let end { r.rangeEnd = Data(end.utf8) }
        configure(&r)
        return try range(r)
    }
}

func d(_ s: String) -> Data { Data(s.utf8) }
func str(_ d: Data) -> String { String(decoding: d, as: UTF8.self) }

func putOp(_ k: String, _ v: String) -> Etcdserverpb_RequestOp {
    var p = Etcdserverpb_PutRequest()
    p.key = d(k)
    p.value = d(v)
    var op = Etcdserverpb_RequestOp()
    op.requestPut = p
    return op
}

func rangeOp(_ k: String, end: String? = nil) -> Etcdserverpb_RequestOp {
    var r = Etcdserverpb_RangeRequest()
    r.key = d(k)
    if let end { r.rangeEnd = d(end) }
    var op = Etcdserverpb_RequestOp()
    op.requestRange = r
    return op
}

func deleteOp(_ k: String, end: String? = nil) -> Etcdserverpb_RequestOp {
    var r = Etcdserverpb_DeleteRangeRequest()
    r.key = d(k)
    if let end { r.rangeEnd = d(end) }
    var op = Etcdserverpb_RequestOp()
    op.requestDeleteRange = r
    return op
}

func compareMod(_ k: String, _ result: Etcdserverpb_Compare.CompareResult, _ rev: Int64) -> Etcdserverpb_Compare {
    var c = Etcdserverpb_Compare()
    c.key = d(k)
    c.target = .mod
    c.result = result
    c.modRevision = rev
    return c
}

func makeServer(_ engine: any StorageEngine = InMemoryEngine(), _ configure: (inout EtcdServerConfig) -> Void = { _ in }) throws -> EtcdServer {
    var config = EtcdServerConfig(clusterID: 0x1234, memberID: 0x5678)
    configure(&config)
    return try EtcdServer(engine: engine, config: config)
}

func XCTAssertEtcdError<T>(_ e: EtcdError, _ body: @autoclosure () throws -> T, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try body(), file: file, line: line) { err in
        XCTAssertEqual(err as? EtcdError, e, file: file, line: line)
    }
}
