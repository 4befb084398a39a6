import EtcdProto
import GRPCTransport
import NIOCore
import SwiftProtobuf

/// One path of etcd's HTTP/JSON gateway: the gRPC method it calls, and how its messages are
/// converted between etcd's JSON and protobuf.
struct GatewayRoute: Sendable {
    /// Full service name, e.g. `etcdserverpb.KV`.
    let service: String
    let method: String
    /// JSON request (one value) to serialized protobuf; throws `GatewayJSON.DecodingError`.
    let decodeRequest: @Sendable (ArraySlice<UInt8>) throws -> ByteBuffer
    /// Serialized protobuf response to JSON.
    let encodeResponse: @Sendable (ByteBuffer) throws -> [UInt8]

    static func make<Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ service: String, _ method: String, _: Request.Type, _: Response.Type
    ) -> GatewayRoute {
        GatewayRoute(service: service, method: method,
                     decodeRequest: { json in
                         let request: Request = try GatewayJSON.decode(json)
                         return ByteBuffer(bytes: try request.serializedBytes() as [UInt8])
                     },
                     encodeResponse: { bytes in
                         let response = try Response(serializedBytes: Array(bytes.readableBytesView))
                         return try GatewayJSON.encode(response)
                     })
    }
}

/// The paths etcd 3.4 serves (the `google.api.http` options of etcd's rpc.proto), under `/v3/`;
/// `/v3beta/...` is served as `/v3/...`, as etcd 3.4 does. Two methods share
/// `/v3/maintenance/hash` in the .proto; etcd's gateway answers it with Hash, not HashKV.
enum GatewayRoutes {
    static func route(forPath path: String) -> GatewayRoute? {
        if path.hasPrefix("/v3beta/") { return table["/v3/" + path.dropFirst("/v3beta/".count)] }
        return table[path]
    }

    static let table: [String: GatewayRoute] = {
        typealias R = GatewayRoute
        let kv = "etcdserverpb.KV", lease = "etcdserverpb.Lease", cluster = "etcdserverpb.Cluster"
        let maintenance = "etcdserverpb.Maintenance", auth = "etcdserverpb.Auth"
        let leaseRevoke = R.make(lease, "LeaseRevoke", Etcdserverpb_LeaseRevokeRequest.self, Etcdserverpb_LeaseRevokeResponse.self)
        let leaseTTL = R.make(lease, "LeaseTimeToLive", Etcdserverpb_LeaseTimeToLiveRequest.self, Etcdserverpb_LeaseTimeToLiveResponse.self)
        let leases = R.make(lease, "LeaseLeases", Etcdserverpb_LeaseLeasesRequest.self, Etcdserverpb_LeaseLeasesResponse.self)
        return [
            "/v3/kv/range": R.make(kv, "Range", Etcdserverpb_RangeRequest.self, Etcdserverpb_RangeResponse.self),
            "/v3/kv/put": R.make(kv, "Put", Etcdserverpb_PutRequest.self, Etcdserverpb_PutResponse.self),
            "/v3/kv/deleterange": R.make(kv, "DeleteRange", Etcdserverpb_DeleteRangeRequest.self, Etcdserverpb_DeleteRangeResponse.self),
            "/v3/kv/txn": R.make(kv, "Txn", Etcdserverpb_TxnRequest.self, Etcdserverpb_TxnResponse.self),
            "/v3/kv/compaction": R.make(kv, "Compact", Etcdserverpb_CompactionRequest.self, Etcdserverpb_CompactionResponse.self),
            "/v3/watch": R.make("etcdserverpb.Watch", "Watch", Etcdserverpb_WatchRequest.self, Etcdserverpb_WatchResponse.self),
            "/v3/lease/grant": R.make(lease, "LeaseGrant", Etcdserverpb_LeaseGrantRequest.self, Etcdserverpb_LeaseGrantResponse.self),
            "/v3/lease/revoke": leaseRevoke,
            "/v3/kv/lease/revoke": leaseRevoke,
            "/v3/lease/keepalive": R.make(lease, "LeaseKeepAlive", Etcdserverpb_LeaseKeepAliveRequest.self, Etcdserverpb_LeaseKeepAliveResponse.self),
            "/v3/lease/timetolive": leaseTTL,
            "/v3/kv/lease/timetolive": leaseTTL,
            "/v3/lease/leases": leases,
            "/v3/kv/lease/leases": leases,
            "/v3/cluster/member/add": R.make(cluster, "MemberAdd", Etcdserverpb_MemberAddRequest.self, Etcdserverpb_MemberAddResponse.self),
            "/v3/cluster/member/remove": R.make(cluster, "MemberRemove", Etcdserverpb_MemberRemoveRequest.self, Etcdserverpb_MemberRemoveResponse.self),
            "/v3/cluster/member/update": R.make(cluster, "MemberUpdate", Etcdserverpb_MemberUpdateRequest.self, Etcdserverpb_MemberUpdateResponse.self),
            "/v3/cluster/member/list": R.make(cluster, "MemberList", Etcdserverpb_MemberListRequest.self, Etcdserverpb_MemberListResponse.self),
            "/v3/cluster/member/promote": R.make(cluster, "MemberPromote", Etcdserverpb_MemberPromoteRequest.self, Etcdserverpb_MemberPromoteResponse.self),
            "/v3/maintenance/alarm": R.make(maintenance, "Alarm", Etcdserverpb_AlarmRequest.self, Etcdserverpb_AlarmResponse.self),
            "/v3/maintenance/status": R.make(maintenance, "Status", Etcdserverpb_StatusRequest.self, Etcdserverpb_StatusResponse.self),
            "/v3/maintenance/defragment": R.make(maintenance, "Defragment", Etcdserverpb_DefragmentRequest.self, Etcdserverpb_DefragmentResponse.self),
            "/v3/maintenance/hash": R.make(maintenance, "Hash", Etcdserverpb_HashRequest.self, Etcdserverpb_HashResponse.self),
            "/v3/maintenance/snapshot": R.make(maintenance, "Snapshot", Etcdserverpb_SnapshotRequest.self, Etcdserverpb_SnapshotResponse.self),
            "/v3/maintenance/transfer-leadership": R.make(maintenance, "MoveLeader", Etcdserverpb_MoveLeaderRequest.self, Etcdserverpb_MoveLeaderResponse.self),
            "/v3/auth/enable": R.make(auth, "AuthEnable", Etcdserverpb_AuthEnableRequest.self, Etcdserverpb_AuthEnableResponse.self),
            "/v3/auth/disable": R.make(auth, "AuthDisable", Etcdserverpb_AuthDisableRequest.self, Etcdserverpb_AuthDisableResponse.self),
            "/v3/auth/authenticate": R.make(auth, "Authenticate", Etcdserverpb_AuthenticateRequest.self, Etcdserverpb_AuthenticateResponse.self),
            "/v3/auth/user/add": R.make(auth, "UserAdd", Etcdserverpb_AuthUserAddRequest.self, Etcdserverpb_AuthUserAddResponse.self),
            "/v3/auth/user/get": R.make(auth, "UserGet", Etcdserverpb_AuthUserGetRequest.self, Etcdserverpb_AuthUserGetResponse.self),
            "/v3/auth/user/list": R.make(auth, "UserList", Etcdserverpb_AuthUserListRequest.self, Etcdserverpb_AuthUserListResponse.self),
            "/v3/auth/user/delete": R.make(auth, "UserDelete", Etcdserverpb_AuthUserDeleteRequest.self, Etcdserverpb_AuthUserDeleteResponse.self),
            "/v3/auth/user/changepw": R.make(auth, "UserChangePassword", Etcdserverpb_AuthUserChangePasswordRequest.self, Etcdserverpb_AuthUserChangePasswordResponse.self),
            "/v3/auth/user/grant": R.make(auth, "UserGrantRole", Etcdserverpb_AuthUserGrantRoleRequest.self, Etcdserverpb_AuthUserGrantRoleResponse.self),
            "/v3/auth/user/revoke": R.make(auth, "UserRevokeRole", Etcdserverpb_AuthUserRevokeRoleRequest.self, Etcdserverpb_AuthUserRevokeRoleResponse.self),
            "/v3/auth/role/add": R.make(auth, "RoleAdd", Etcdserverpb_AuthRoleAddRequest.self, Etcdserverpb_AuthRoleAddResponse.self),
            "/v3/auth/role/get": R.make(auth, "RoleGet", Etcdserverpb_AuthRoleGetRequest.self, Etcdserverpb_AuthRoleGetResponse.self),
            "/v3/auth/role/list": R.make(auth, "RoleList", Etcdserverpb_AuthRoleListRequest.self, Etcdserverpb_AuthRoleListResponse.self),
            "/v3/auth/role/delete": R.make(auth, "RoleDelete", Etcdserverpb_AuthRoleDeleteRequest.self, Etcdserverpb_AuthRoleDeleteResponse.self),
            "/v3/auth/role/grant": R.make(auth, "RoleGrantPermission", Etcdserverpb_AuthRoleGrantPermissionRequest.self, Etcdserverpb_AuthRoleGrantPermissionResponse.self),
            "/v3/auth/role/revoke": R.make(auth, "RoleRevokePermission", Etcdserverpb_AuthRoleRevokePermissionRequest.self, Etcdserverpb_AuthRoleRevokePermissionResponse.self),
        ]
    }()
}
