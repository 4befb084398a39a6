import Auth
import EtcdProto
import EtcdServer
import Foundation
import XCTest

/// The auth check at apply time (etcd's authApplierV3): a write that passed the check on
/// arrival is refused when the auth state changed before it was applied, with etcd's errors
/// (etcd 3.4 auth/store.go isOpPermitted and IsAdminPermitted, apply_auth.go checkLeasePuts).
/// The callers here were checked on arrival, then the auth state changes, then their writes
/// reach the applier: what the race between two clients produces, made deterministic.
final class AuthApplyCheckTests: XCTestCase {
    private func server() throws -> EtcdServer {
        try makeServer { $0.bcryptCost = 4 }
    }

    private func change(_ s: EtcdServer, _ m: AuthState.Mutation, as caller: AuthCaller? = nil) throws {
        _ = try s.wait { s.applyAuth(m, caller: caller, completion: $0) }
    }

    /// root (root role), alice (READWRITE on /a/ and its prefix), auth enabled.
    private func enableAuth(_ s: EtcdServer) throws {
        let hash = try XCTUnwrap(s.auth.hasher.hash("pw"))
        try change(s, .roleAdd(name: "root"))
        try change(s, .userAdd(name: "root", passwordHash: hash, noPassword: false))
        try change(s, .userGrantRole(user: "root", role: "root"))
        try change(s, .roleAdd(name: "rw"))
        try change(s, .roleGrantPermission(role: "rw", permission: .init(kind: .readWrite, key: Array("/a/".utf8),
                                                                          rangeEnd: Array("/a0".utf8))))
        try change(s, .userAdd(name: "alice", passwordHash: hash, noPassword: false))
        try change(s, .userGrantRole(user: "alice", role: "rw"))
        try change(s, .enable)
    }

    private func login(_ s: EtcdServer, _ user: String) throws -> AuthCaller {
        try s.caller(token: try s.authenticate(name: user, password: "pw"))
    }

    private func put(_ key: String, lease: Int64 = 0) -> Etcdserverpb_PutRequest {
        var r = Etcdserverpb_PutRequest()
        r.key = d(key)
        r.value = d("v")
        r.lease = lease
        return r
    }

    private func keyCount(_ s: EtcdServer, _ key: String) throws -> Int {
        try s.get(key).kvs.count
    }

    func testPermissionRevokedBetweenArrivalAndApplyRefusesTheWriteWithAnOldRevision() throws {
        let s = try server()
        defer { s.close() }
        try enableAuth(s)
        let root = try login(s, "root")
        let alice = try login(s, "alice")
        try alice.check(put("/a/k"), leasesOf: s)   // allowed on arrival
        try change(s, .roleRevokePermission(role: "rw", key: Array("/a/".utf8), rangeEnd: Array("/a0".utf8)), as: root)
        XCTAssertEtcdError(EtcdError(AuthError.authOldRevision), try s.wait { s.put(self.put("/a/k"), caller: alice, completion: $0) })
        XCTAssertEqual(try keyCount(s, "/a/k"), 0, "the refused write changed the store")
        // The same write with a caller checked now is refused on arrival.
        XCTAssertEtcdError(EtcdError(AuthError.permissionDenied), try login(s, "alice").check(put("/a/k"), leasesOf: s))
        // root's own caller, checked before the change, is as old; checked again, it is applied.
        XCTAssertEtcdError(EtcdError(AuthError.authOldRevision), try s.wait { s.put(self.put("/a/k"), caller: root, completion: $0) })
        let rootNow = try login(s, "root")
        _ = try s.wait { s.put(self.put("/a/k"), caller: rootNow, completion: $0) }
        XCTAssertEqual(try keyCount(s, "/a/k"), 1)
        XCTAssertEqual(EtcdError(AuthError.authOldRevision).message, "etcdserver: revision of auth store is old")
    }

    func testUnrelatedAuthChangeAlsoMakesTheRevisionOldAsInEtcd() throws {
        let s = try server()
        defer { s.close() }
        try enableAuth(s)
        let root = try login(s, "root")
        let alice = try login(s, "alice")
        try change(s, .roleAdd(name: "unrelated"), as: root)
        var d = Etcdserverpb_DeleteRangeRequest()
        d.key = self.put("/a/k").key
        XCTAssertEtcdError(EtcdError(AuthError.authOldRevision), try s.wait { s.deleteRange(d, caller: alice, completion: $0) })
        var t = Etcdserverpb_TxnRequest()
        t.success = [putOp("/a/k", "v")]
        XCTAssertEtcdError(EtcdError(AuthError.authOldRevision), try s.wait { s.txn(t, caller: alice, completion: $0) })
        // Checked again now, the same writes pass.
        let fresh = try login(s, "alice")
        _ = try s.wait { s.txn(t, caller: fresh, completion: $0) }
        _ = try s.wait { s.deleteRange(d, caller: fresh, completion: $0) }
    }

    func testWriteThatArrivedBeforeAuthEnableIsRefusedWithUserNameEmpty() throws {
        let s = try server()
        defer { s.close() }
        let anonymous = try s.caller(token: nil)   // auth disabled: no identity
        XCTAssertEqual(anonymous.identity, RequestIdentity(user: "", authRevision: 0, checkedOnArrival: false))
        _ = try s.wait { s.put(self.put("/before"), caller: anonymous, completion: $0) }   // still disabled: applied
        try enableAuth(s)
        XCTAssertEtcdError(EtcdError(AuthError.userEmpty), try s.wait { s.put(self.put("/after"), caller: anonymous, completion: $0) })
        XCTAssertEqual(try keyCount(s, "/after"), 0)
        XCTAssertEqual(try keyCount(s, "/before"), 1)
    }

    func testAuthChangeByAUserWhoLostTheRootRoleBeforeApplyIsRefused() throws {
        let s = try server()
        defer { s.close() }
        try enableAuth(s)
        let root = try login(s, "root")
        let hash = try XCTUnwrap(s.auth.hasher.hash("pw"))
        try change(s, .userAdd(name: "admin", passwordHash: hash, noPassword: false), as: root)
        try change(s, .userGrantRole(user: "admin", role: "root"), as: root)
        let admin = try login(s, "admin")
        try admin.requireAdmin()
        try change(s, .userRevokeRole(user: "admin", role: "root"), as: root)
        // etcd's IsAdminPermitted looks at the roles, not the revision.
        XCTAssertEtcdError(EtcdError(AuthError.permissionDenied), try change(s, .roleAdd(name: "x"), as: admin))
        try change(s, .userDelete(name: "admin"), as: root)
        XCTAssertEtcdError(EtcdError(AuthError.userNotFound), try change(s, .roleAdd(name: "x"), as: admin))
        XCTAssertNil(s.auth.state.roles["x"])
        // root itself still may (an old revision does not matter for auth changes).
        try change(s, .roleAdd(name: "x"), as: root)
        XCTAssertNotNil(s.auth.state.roles["x"])
    }

    /// etcd's checkLeasePuts runs at apply time: a key the writer may not write attached to the
    /// lease after the write arrived refuses it (no auth change in between: same revision).
    func testLeaseKeysAreCheckedAgainAtApply() throws {
        let s = try server()
        defer { s.close() }
        try enableAuth(s)
        let root = try login(s, "root")
        let alice = try login(s, "alice")
        let lease = try s.grantSync(ttl: 60).id
        try alice.check(put("/a/leased", lease: lease), leasesOf: s)   // the lease has no key yet
        _ = try s.wait { s.put(self.put("/b/root-only", lease: lease), caller: root, completion: $0) }
        XCTAssertEtcdError(EtcdError(AuthError.permissionDenied),
                           try s.wait { s.put(self.put("/a/leased", lease: lease), caller: alice, completion: $0) })
        var revoke = Etcdserverpb_LeaseRevokeRequest()
        revoke.id = lease
        XCTAssertEtcdError(EtcdError(AuthError.permissionDenied), try s.wait { s.leaseRevoke(revoke, caller: alice, completion: $0) })
        XCTAssertEqual(try keyCount(s, "/a/leased"), 0)
        XCTAssertEqual(try keyCount(s, "/b/root-only"), 1)
        _ = try s.wait { s.leaseRevoke(revoke, caller: root, completion: $0) }
        XCTAssertEqual(try keyCount(s, "/b/root-only"), 0)
    }
}
