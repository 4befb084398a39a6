import Dispatch
import EtcdProto
import EtcdServer
import Foundation
import FuzzTargets
import InMemoryEngine
import SwiftProtobuf
import Synchronization

/// `server-state`: a sequence of etcd requests, decoded from the input as a client's bytes would
/// be, applied to a fresh `EtcdServer` on the in-memory engine. Input: up to 32 requests, each
/// one selector byte (request type, modulo 7: Range, Put, DeleteRange, Txn, Compaction,
/// LeaseGrant, LeaseRevoke), a 2-byte little-endian length and that many bytes of the request's
/// protobuf encoding (bytes that do not decode are skipped, as the transport would refuse them).
///
/// Checked after every request: the revision never goes back; a failed request changes nothing;
/// a Put is exactly one revision, a DeleteRange one if it deleted anything, a Txn at most one;
/// a response header carries the revision; a Range answers only versions at or below its
/// revision. At the end the store is reopened on the same engine (the key index rebuilt from
/// the engine) and every revision still readable must read the same as before.
enum StateMachineTarget {
    static let target = FuzzTarget(name: "server-state", run: run)

    static func run(_ input: [UInt8], _ scratch: String) throws {
        let engine = InMemoryEngine()
        var config = EtcdServerConfig(clusterID: 0x1234, memberID: 0x5678)
        config.leaseExpiryCheckMilliseconds = 3_600_000  // no revisions from lease expiry mid-input
        var server = try EtcdServer(engine: engine, config: config)
        var requests = 0
        var i = 0
        while i + 3 <= input.count, requests < 32 {
            let selector = input[i] % 7
            let length = Int(input[i + 1]) | Int(input[i + 2]) << 8
            let body = Data(input[(i + 3)..<min(i + 3 + length, input.count)])
            i = min(i + 3 + length, input.count)
            requests += 1
            try apply(selector, body, to: server)
        }
        let before = try everything(server)
        server.close()
        server = try EtcdServer(engine: engine, config: config)
        defer { server.close() }
        let after = try everything(server)
        guard before == after else {
            throw FuzzFinding("state after reopening differs from before (revision \(before.revision) -> \(after.revision), compacted \(before.compacted) -> \(after.compacted), \(before.reads.count) vs \(after.reads.count) reads)")
        }
    }

    /// Applies one request, checking the invariants above.
    static func apply(_ selector: UInt8, _ body: Data, to server: EtcdServer) throws {
        let before = server.currentRevision
        func check(_ ok: Bool, _ what: @autoclosure () -> String) throws {
            if !ok { throw FuzzFinding("\(what()) (revision before \(before), after \(server.currentRevision))") }
        }
        func unchangedOnFailure<T>(_ result: Result<T, EtcdError>) throws -> T? {
            switch result {
            case .success(let value): return value
            case .failure:
                try check(server.currentRevision == before, "a failed request changed the revision")
                return nil
            }
        }
        switch selector {
        case 0:
            guard let r = try? Etcdserverpb_RangeRequest(serializedBytes: body) else { return }
            guard let resp = try unchangedOnFailure(Result(catching: { () throws(EtcdError) in try server.range(r) })) else { return }
            let at = r.revision > 0 ? r.revision : resp.header.revision
            try check(resp.header.revision >= before, "range header revision went back")
            for kv in resp.kvs {
                try check(kv.modRevision <= at && kv.createRevision <= kv.modRevision && kv.createRevision > 0,
                          "range at \(at) answered a version \(kv.createRevision)/\(kv.modRevision)")
            }
        case 1:
            guard let r = try? Etcdserverpb_PutRequest(serializedBytes: body) else { return }
            guard let resp = try unchangedOnFailure(wait { server.put(r, completion: $0) }) else { return }
            try check(server.currentRevision == before + 1, "a put is not exactly one revision")
            try check(resp.header.revision == before + 1, "put header revision \(resp.header.revision)")
        case 2:
            guard let r = try? Etcdserverpb_DeleteRangeRequest(serializedBytes: body) else { return }
            guard let resp = try unchangedOnFailure(wait { server.deleteRange(r, completion: $0) }) else { return }
            try check(server.currentRevision == before + (resp.deleted > 0 ? 1 : 0),
                      "delete of \(resp.deleted) keys moved the revision wrongly")
        case 3:
            guard let r = try? Etcdserverpb_TxnRequest(serializedBytes: body) else { return }
            guard let resp = try unchangedOnFailure(wait { server.txn(r, completion: $0) }) else { return }
            let delta = server.currentRevision - before
            try check(delta == 0 || delta == 1, "a txn took \(delta) revisions")
            try check(resp.header.revision == server.currentRevision, "txn header revision \(resp.header.revision)")
        case 4:
            guard let r = try? Etcdserverpb_CompactionRequest(serializedBytes: body) else { return }
            guard try unchangedOnFailure(wait { server.compact(r, completion: $0) }) != nil else { return }
            try check(server.store.compactRevision == r.revision, "compaction to \(r.revision) left \(server.store.compactRevision)")
        case 5:
            guard let r = try? Etcdserverpb_LeaseGrantRequest(serializedBytes: body) else { return }
            _ = try unchangedOnFailure(wait { server.leaseGrant(r, completion: $0) })
        default:
            guard let r = try? Etcdserverpb_LeaseRevokeRequest(serializedBytes: body) else { return }
            _ = try unchangedOnFailure(wait { server.leaseRevoke(r, completion: $0) })
        }
        try check(server.currentRevision >= before, "the revision went back")
    }

    /// Waits for a write's completion; a write that never completes is a finding (a stall).
    static func wait<T: Sendable>(_ start: (@escaping @Sendable (Result<T, EtcdError>) -> Void) -> Void) throws -> Result<T, EtcdError> {
        let box = Mutex<Result<T, EtcdError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        start { result in
            box.withLock { $0 = result }
            done.signal()
        }
        guard done.wait(timeout: .now() + 10) == .success, let result = box.withLock({ $0 }) else {
            throw FuzzFinding("a write did not complete within 10 s")
        }
        return result
    }

    /// Every key at every readable revision (at most the last 32), as a client would read them.
    struct Everything: Equatable {
        var revision: Int64
        var compacted: Int64
        var reads: [[Mvccpb_KeyValue]]
    }

    static func everything(_ server: EtcdServer) throws -> Everything {
        let revision = server.currentRevision, compacted = server.store.compactRevision
        var reads: [[Mvccpb_KeyValue]] = []
        var at = revision
        while at > compacted, at >= 1, reads.count < 32 {
            var r = Etcdserverpb_RangeRequest()
            r.key = Data([0])
            r.rangeEnd = Data([0])
            r.revision = at
            reads.append(try server.range(r).kvs)
            at -= 1
        }
        return Everything(revision: revision, compacted: compacted, reads: reads)
    }
}
