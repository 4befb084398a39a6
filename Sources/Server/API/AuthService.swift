import Auth
import Dispatch
import EtcdProto
import EtcdServer
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import GRPCTransport
import Logging
import SwiftProtobuf

/// etcd's `etcdserverpb.Auth` service. Changes go through the ordered log; every RPC but
/// Authenticate and AuthStatus needs the root role once auth is enabled, as in etcd.
public enum AuthService {
    /// bcrypt is slow by design: hashing and verifying run here, never on an event loop.
    private static let hashingQueue = DispatchQueue(label: "rusd.auth.bcrypt", attributes: .concurrent)
    /// Failed Authenticate calls are logged as etcd logs them: the user name and the error,
    /// never the password.
    private static let logger = Logger(label: "rusd.auth")

    public static func make(_ server: EtcdServer) -> Service {
        /// A unary auth-management method: admin check, mutation through the log, response.
        func mutating<Req: SwiftProtobuf.Message & Sendable, Res: SwiftProtobuf.Message & Sendable>(
            _ name: String, _ request: Req.Type, _ response: Res.Type,
            hashes: Bool = false,
            _ mutation: @escaping @Sendable (Req, PasswordHasher) throws(EtcdError) -> AuthState.Mutation,
            _ build: @escaping @Sendable (Etcdserverpb_ResponseHeader) -> Res
        ) -> ServiceMethod {
            .unary(name) { (req: Req, context, responder: UnaryResponder<Res>) in
                let caller: AuthCaller
                do throws(EtcdError) {
                    caller = try server.caller(context)
                    try caller.requireAdmin()
                } catch {
                    return responder.fail(GRPCStatus(error))
                }
                let submit: @Sendable () -> Void = {
                    let m: AuthState.Mutation
                    do throws(EtcdError) { m = try mutation(req, server.auth.hasher) } catch {
                        return responder.complete(.failure(error), on: context)
                    }
                    server.applyAuth(m, caller: caller) { result in responder.complete(result.map(build), on: context) }
                }
                if hashes { hashingQueue.async(execute: submit) } else { submit() }
            }
        }

        return Service(name: "etcdserverpb.Auth", methods: [
            .unary("AuthEnable") { (_: Etcdserverpb_AuthEnableRequest, context, responder: UnaryResponder<Etcdserverpb_AuthEnableResponse>) in
                let caller: AuthCaller
                do throws(EtcdError) {
                    caller = try server.caller(context)
                    try caller.requireAdmin()
                } catch {
                    return responder.fail(GRPCStatus(error))
                }
                server.applyAuth(.enable, caller: caller) { result in
                    responder.complete(result.map { h in var r = Etcdserverpb_AuthEnableResponse(); r.header = h; return r }, on: context)
                }
            },
            mutating("AuthDisable", Etcdserverpb_AuthDisableRequest.self, Etcdserverpb_AuthDisableResponse.self,
                     { _, _ in .disable }, { h in var r = Etcdserverpb_AuthDisableResponse(); r.header = h; return r }),
            // etcd 3.5: any caller (no permission needed), but an invalid token is refused. A
            // raft request in etcd: in cluster mode answered after the read index.
            .unary("AuthStatus") { (_: Etcdserverpb_AuthStatusRequest, context, responder: UnaryResponder<Etcdserverpb_AuthStatusResponse>) in
                afterReadIndex(server, context, responder) {
                    guard authorized(server, context, responder, { (_: AuthCaller) throws(EtcdError) in }) else { return }
                    let state = server.auth.state
                    var r = Etcdserverpb_AuthStatusResponse()
                    r.header = server.header(revision: server.currentRevision)
                    r.enabled = state.enabled
                    r.authRevision = state.revision
                    responder.succeed(r)
                }
            },
            .unary("Authenticate") { (req: Etcdserverpb_AuthenticateRequest, context, responder: UnaryResponder<Etcdserverpb_AuthenticateResponse>) in
                // etcd refuses a stale token sent along while auth is enabled.
                if server.auth.state.enabled {
                    guard authorized(server, context, responder, { (_: AuthCaller) throws(EtcdError) in }) else { return }
                }
                // Cluster mode: the users and passwords changed on any member before this call
                // are applied here first (etcd's Authenticate goes through raft), and a simple
                // token is issued through the log, valid on every member.
                let authenticate: @Sendable () -> Void = { hashingQueue.async {
                    server.authenticate(name: req.name, password: req.password, checkingOn: hashingQueue) { result in
                        if case .failure(let error) = result, error.message != AuthError.authNotEnabled.message {
                            logger.warning("invalid authentication was requested",
                                           metadata: ["user": "\(req.name)", "error": "\(error.message)"])
                        }
                        responder.complete(result.map { token in
                            var r = Etcdserverpb_AuthenticateResponse()
                            r.token = token
                            r.header = server.header(revision: server.currentRevision)
                            return r
                        }, on: context)
                    }
                } }
                guard server.readsNeedReadIndex else { return authenticate() }
                server.waitForReadIndex { error in
                    if let error { return responder.complete(.failure(error), on: context) }
                    authenticate()
                }
            },
            mutating("UserAdd", Etcdserverpb_AuthUserAddRequest.self, Etcdserverpb_AuthUserAddResponse.self, hashes: true,
                     { req, hasher throws(EtcdError) in
                         let noPassword = req.hasOptions && req.options.noPassword
                         if req.name.isEmpty { throw EtcdError(AuthError.userEmpty) }
                         let h = noPassword ? "" : (req.hashedPassword.isEmpty ? try hash(req.password, hasher) : req.hashedPassword)
                         return .userAdd(name: req.name, passwordHash: h, noPassword: noPassword)
                     }, { h in var r = Etcdserverpb_AuthUserAddResponse(); r.header = h; return r }),
            mutating("UserDelete", Etcdserverpb_AuthUserDeleteRequest.self, Etcdserverpb_AuthUserDeleteResponse.self,
                     { req, _ in .userDelete(name: req.name) },
                     { h in var r = Etcdserverpb_AuthUserDeleteResponse(); r.header = h; return r }),
            mutating("UserChangePassword", Etcdserverpb_AuthUserChangePasswordRequest.self, Etcdserverpb_AuthUserChangePasswordResponse.self, hashes: true,
                     { req, hasher throws(EtcdError) in
                         .userChangePassword(name: req.name, passwordHash: req.hashedPassword.isEmpty ? try hash(req.password, hasher) : req.hashedPassword)
                     }, { h in var r = Etcdserverpb_AuthUserChangePasswordResponse(); r.header = h; return r }),
            mutating("UserGrantRole", Etcdserverpb_AuthUserGrantRoleRequest.self, Etcdserverpb_AuthUserGrantRoleResponse.self,
                     { req, _ in .userGrantRole(user: req.user, role: req.role) },
                     { h in var r = Etcdserverpb_AuthUserGrantRoleResponse(); r.header = h; return r }),
            mutating("UserRevokeRole", Etcdserverpb_AuthUserRevokeRoleRequest.self, Etcdserverpb_AuthUserRevokeRoleResponse.self,
                     { req, _ in .userRevokeRole(user: req.name, role: req.role) },
                     { h in var r = Etcdserverpb_AuthUserRevokeRoleResponse(); r.header = h; return r }),
            mutating("RoleAdd", Etcdserverpb_AuthRoleAddRequest.self, Etcdserverpb_AuthRoleAddResponse.self,
                     { req, _ in .roleAdd(name: req.name) },
                     { h in var r = Etcdserverpb_AuthRoleAddResponse(); r.header = h; return r }),
            mutating("RoleDelete", Etcdserverpb_AuthRoleDeleteRequest.self, Etcdserverpb_AuthRoleDeleteResponse.self,
                     { req, _ in .roleDelete(name: req.role) },
                     { h in var r = Etcdserverpb_AuthRoleDeleteResponse(); r.header = h; return r }),
            mutating("RoleGrantPermission", Etcdserverpb_AuthRoleGrantPermissionRequest.self, Etcdserverpb_AuthRoleGrantPermissionResponse.self,
                     { req, _ throws(EtcdError) in
                         guard let kind = AuthState.Permission.Kind(rawValue: req.perm.permType.rawValue) else {
                             throw EtcdError(.invalidArgument, "etcdserver: invalid permission type")
                         }
                         return .roleGrantPermission(role: req.name, permission: .init(kind: kind, key: Array(req.perm.key), rangeEnd: Array(req.perm.rangeEnd)))
                     }, { h in var r = Etcdserverpb_AuthRoleGrantPermissionResponse(); r.header = h; return r }),
            mutating("RoleRevokePermission", Etcdserverpb_AuthRoleRevokePermissionRequest.self, Etcdserverpb_AuthRoleRevokePermissionResponse.self,
                     { req, _ in .roleRevokePermission(role: req.role, key: Array(req.key), rangeEnd: Array(req.rangeEnd)) },
                     { h in var r = Etcdserverpb_AuthRoleRevokePermissionResponse(); r.header = h; return r }),
            // A user may read itself, and the roles it has, without the root role (etcd).
            reading("UserGet", Etcdserverpb_AuthUserGetRequest.self, server, allowed: { req, caller in req.name == caller.user }) { (req, state, header) throws(EtcdError) in
                guard let user = state.users[req.name] else { throw EtcdError(AuthError.userNotFound) }
                var r = Etcdserverpb_AuthUserGetResponse()
                r.header = header
                r.roles = user.roles
                return r
            },
            reading("UserList", Etcdserverpb_AuthUserListRequest.self, server) { (_, state, header) throws(EtcdError) in
                var r = Etcdserverpb_AuthUserListResponse()
                r.header = header
                r.users = state.users.keys.sorted()
                return r
            },
            reading("RoleGet", Etcdserverpb_AuthRoleGetRequest.self, server,
                    allowed: { req, caller in caller.user.flatMap { caller.state.users[$0]?.roles.contains(req.role) } ?? false }) { (req, state, header) throws(EtcdError) in
                var r = Etcdserverpb_AuthRoleGetResponse()
                r.header = header
                guard let role = state.roles[req.role] else { throw EtcdError(AuthError.roleNotFound) }
                r.perm = role.permissions.map { p in
                    var q = Authpb_Permission()
                    q.permType = Authpb_Permission.TypeEnum(rawValue: p.kind.rawValue) ?? .read
                    q.key = Data(p.key)
                    q.rangeEnd = Data(p.rangeEnd)
                    return q
                }
                return r
            },
            reading("RoleList", Etcdserverpb_AuthRoleListRequest.self, server) { (_, state, header) throws(EtcdError) in
                var r = Etcdserverpb_AuthRoleListResponse()
                r.header = header
                r.roles = state.roles.keys.sorted()
                return r
            },
        ])
    }

    private static func hash(_ password: String, _ hasher: PasswordHasher) throws(EtcdError) -> String {
        guard let h = hasher.hash(password) else { throw EtcdError(.internalError, "etcdserver: cannot hash the password") }
        return h
    }

    /// A read-only admin method answered from the committed auth state: on the event loop on
    /// a single member; in cluster mode after the read index (etcd's UserGet, UserList, RoleGet
    /// and RoleList are raft requests), so that the changes acknowledged on any member before
    /// the call are seen, and checked, here.
    private static func reading<Req: SwiftProtobuf.Message & Sendable, Res: SwiftProtobuf.Message>(
        _ name: String, _ request: Req.Type, _ server: EtcdServer,
        allowed: @escaping @Sendable (Req, AuthCaller) -> Bool = { _, _ in false },
        _ answer: @escaping @Sendable (Req, AuthState, Etcdserverpb_ResponseHeader) throws(EtcdError) -> Res
    ) -> ServiceMethod {
        .unary(name) { (req: Req, context, responder: UnaryResponder<Res>) in
            afterReadIndex(server, context, responder) {
                do throws(EtcdError) {
                    let caller = try server.caller(context)
                    if !allowed(req, caller) { try caller.requireAdmin() }
                    responder.succeed(try answer(req, caller.state, server.header(revision: server.currentRevision)))
                } catch {
                    responder.fail(GRPCStatus(error))
                }
            }
        }
    }

    /// Runs `body` now on a single member; in cluster mode once this member applied every entry
    /// committed before the call (on the call's event loop), or answers the read index's error.
    private static func afterReadIndex<Res: SwiftProtobuf.Message>(_ server: EtcdServer, _ context: CallContext, _ responder: UnaryResponder<Res>,
                                            _ body: @escaping @Sendable () -> Void) {
        guard server.readsNeedReadIndex else { return body() }
        server.waitForReadIndex { error in
            if let error { return responder.complete(.failure(error), on: context) }
            context.eventLoop.execute(body)
        }
    }
}
