import EtcdProto
import EtcdServer
import Foundation
import InMemoryEngine
import XCTest

extension EtcdServer {
    func grantSync(ttl: Int64, id: Int64 = 0) throws -> Etcdserverpb_LeaseGrantResponse {
        var r = Etcdserverpb_LeaseGrantRequest()
        r.ttl = ttl
        r.id = id
        return try wait { leaseGrant(r, completion: $0) }
    }
    func revokeSync(_ id: Int64) throws -> Etcdserverpb_LeaseRevokeResponse {
        var r = Etcdserverpb_LeaseRevokeRequest()
        r.id = id
        return try wait { leaseRevoke(r, completion: $0) }
    }
    func ttl(_ id: Int64, keys: Bool = true) -> Etcdserverpb_LeaseTimeToLiveResponse {
        var r = Etcdserverpb_LeaseTimeToLiveRequest()
        r.id = id
        r.keys = keys
        return leaseTimeToLive(r)
    }
}

final class LeaseTests: XCTestCase {
    func testGrantAttachRevokeInOneRevision() throws {
        let s = try makeServer()
        defer { s.close() }
        let g = try s.grantSync(ttl: 60, id: 7)
        XCTAssertEqual(g.id, 7)
        XCTAssertEqual(g.ttl, 60)
        XCTAssertEqual(g.header.clusterID, 0x1234)
        XCTAssertEtcdError(.leaseExists, try s.grantSync(ttl: 60, id: 7))
        XCTAssertEtcdError(.leaseTTLTooLarge, try s.grantSync(ttl: 9_000_000_001))
        XCTAssertEqual(try s.grantSync(ttl: 1).ttl, 2, "TTL below the minimum is raised to it")
        let generated = try s.grantSync(ttl: 30)
        XCTAssertGreaterThan(generated.id, 0)

        for k in ["a", "b", "c"] { try s.putSync(k, "v", lease: 7) }
        try s.putSync("free", "v")
        let t = s.ttl(7)
        XCTAssertEqual(t.grantedTtl, 60)
        XCTAssertTrue((58...60).contains(t.ttl), "\(t.ttl)")
        XCTAssertEqual(t.keys.map(str), ["a", "b", "c"])
        XCTAssertEqual(try s.get("a").kvs.first?.lease, 7)

        // Moving a key to another lease detaches it; ignore_lease keeps it.
        try s.putSync("c", "v2", lease: generated.id)
        XCTAssertEqual(s.ttl(7).keys.map(str), ["a", "b"])
        var keep = Etcdserverpb_PutRequest()
        keep.key = d("c")
        keep.value = d("v3")
        keep.ignoreLease = true
        _ = try s.putSync(keep)
        XCTAssertEqual(try s.get("c").kvs.first?.lease, generated.id)

        let before = s.currentRevision
        let r = try s.revokeSync(7)
        XCTAssertEqual(r.header.revision, before + 1, "every attached key deleted in one revision")
        XCTAssertEqual(try s.get("\0", end: "\0").kvs.map { str($0.key) }, ["c", "free"])
        XCTAssertEtcdError(.leaseNotFound, try s.revokeSync(7))
        XCTAssertEqual(s.ttl(7).ttl, -1)
        XCTAssertEtcdError(.leaseNotFound, try s.putSync("x", "v", lease: 7))
        let remaining = s.leaseLeases(.init()).leases.map(\.id)
        XCTAssertEqual(remaining.count, 2)   // the 2 s one and `generated`
        XCTAssertTrue(remaining.contains(generated.id))
        XCTAssertFalse(remaining.contains(7))
    }

    func testKeepAlive() throws {
        let s = try makeServer()
        defer { s.close() }
        var unknown = Etcdserverpb_LeaseKeepAliveRequest()
        unknown.id = 99
        XCTAssertEqual(s.leaseKeepAlive(unknown).ttl, 0)
        _ = try s.grantSync(ttl: 10, id: 5)
        var ka = Etcdserverpb_LeaseKeepAliveRequest()
        ka.id = 5
        let resp = s.leaseKeepAlive(ka)
        XCTAssertEqual(resp.id, 5)
        XCTAssertEqual(resp.ttl, 10)
    }

    func testExpiryRevokesThroughTheLog() throws {
        let s = try makeServer { $0.minLeaseTTL = 1; $0.leaseExpiryCheckMilliseconds = 20 }
        defer { s.close() }
        _ = try s.grantSync(ttl: 1, id: 1)
        for i in 0..<50 { try s.putSync("/registry/events/e\(i)", "v", lease: 1) }
        try s.putSync("/registry/pods/keep", "v")
        let before = s.currentRevision
        let deadline = Date().addingTimeInterval(15)
        while try s.get("/registry/events/", end: "/registry/events0").count > 0 && Date() < deadline {
            usleep(20_000)
        }
        XCTAssertEqual(try s.get("/registry/events/", end: "/registry/events0").count, 0)
        XCTAssertEqual(s.currentRevision, before + 1, "all 50 keys deleted in one revision")
        XCTAssertEqual(try s.get("/registry/pods/keep").count, 1)
        XCTAssertEqual(s.ttl(1).ttl, -1)
    }

    func testLeasesSurviveRestartWithTTLRefreshed() throws {
        let engine = InMemoryEngine()
        do {
            let s = try makeServer(engine)
            _ = try s.grantSync(ttl: 100, id: 11)
            _ = try s.grantSync(ttl: 50, id: 12)
            try s.putSync("k1", "v", lease: 11)
            try s.putSync("k2", "v", lease: 11)
            _ = try s.revokeSync(12)
            s.close()
        }
        let s = try makeServer(engine)
        defer { s.close() }
        XCTAssertEqual(s.leaseLeases(.init()).leases.map(\.id), [11])
        let t = s.ttl(11)
        XCTAssertEqual(t.grantedTtl, 100)
        XCTAssertTrue((99...100).contains(t.ttl))
        XCTAssertEqual(t.keys.map(str), ["k1", "k2"])
        let r = try s.revokeSync(11)
        XCTAssertEqual(r.header.revision, 4)   // k1 at 2, k2 at 3, both deleted at 4
        XCTAssertEqual(try s.get("k", end: "l").count, 0)
    }
}
