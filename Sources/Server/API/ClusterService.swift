import EtcdProto
import EtcdServer
import GRPCTransport

/// etcd's `etcdserverpb.Cluster` service for a single member without peers.
///
/// Auth, as etcd (checkMembershipOperationPermission): every membership change needs the root
/// role, checked before anything else; MemberList an authenticated caller (newest etcd's
/// requireAuthInfo: GHSA-q8m4-xhhv-38mg, relaxed from root by etcd PR 21538; etcd 3.4 checks
/// nothing, and no token while auth is disabled).
///
/// MemberList returns this member (ID from `EtcdServerConfig.memberID`, name and URLs from
/// `LocalMember`). Membership changes answer as a single-member etcd with
/// --strict-reconfig-check does (checked against etcd 3.4.23):
/// - MemberRemove / MemberPromote / MemberUpdate of an unknown ID: NOT_FOUND
///   "etcdserver: member not found".
/// - MemberRemove of this member: "etcdserver: re-configuration failed due to not enough
///   started members"; MemberPromote of it: "etcdserver: can only promote a learner member".
/// - MemberUpdate of this member: accepted (peer URLs kept in memory, see `LocalMember`).
/// - MemberAdd with this member's peer URLs: "etcdserver: Peer URLs already exists".
/// - MemberAdd otherwise: deliberate difference. etcd accepts a second member on a
///   one-member cluster and then has no quorum until it starts; rusd has no peer transport, so
///   the new member could never start: it refuses with etcd's "re-configuration failed due to
///   not enough started members" (FAILED_PRECONDITION) instead of losing quorum.
///
/// Cluster mode (`member.cluster`, --shared-log): every RPC acts on the membership recorded in
/// the shared log (`ClusterMembership`, docs/cluster.md "Membership and leader"), answered off
/// the event loop: MemberList lists every member; MemberAdd records a member that takes the ID
/// when it starts with those peer URLs; MemberRemove removes one for good (it stops serving);
/// MemberUpdate changes peer URLs; errors as etcd 3.4's (member not found, Peer URLs already
/// exists, given member URLs are invalid, not enough started members for the last member).
/// Learners do not exist (every member applies the whole log): MemberAdd of a learner is
/// refused, MemberPromote of a member answers "can only promote a learner member".
public enum ClusterService {
    static let memberNotFound = EtcdError(.notFound, "etcdserver: member not found")
    static let notEnoughStarted = EtcdError(.failedPrecondition, "etcdserver: re-configuration failed due to not enough started members")
    static let notLearner = EtcdError(.failedPrecondition, "etcdserver: can only promote a learner member")
    static let peerURLExists = EtcdError(.failedPrecondition, "etcdserver: Peer URLs already exists")

    public static func make(_ server: EtcdServer, member: LocalMember) -> Service {
        @Sendable func members() -> [Etcdserverpb_Member] {
            var m = Etcdserverpb_Member()
            m.id = server.config.memberID
            m.name = member.name
            m.peerUrls = member.peerURLs
            m.clientUrls = member.clientURLs
            m.isLearner = false
            return [m]
        }
        @Sendable func header() -> Etcdserverpb_ResponseHeader {
            var h = server.header(revision: 0)
            h.revision = 0
            return h
        }
        if let cluster = member.cluster { return clusterMode(server, cluster, header: header) }
        return Service(name: "etcdserverpb.Cluster", methods: [
            .unary("MemberList") { (_: Etcdserverpb_MemberListRequest, context, responder: UnaryResponder<Etcdserverpb_MemberListResponse>) in
                guard authorized(server, context, responder, tokenCheckedWhenDisabled: false, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAuthenticated() }) else { return }
                var resp = Etcdserverpb_MemberListResponse()
                resp.header = header()
                resp.members = members()
                responder.succeed(resp)
            },
            .unary("MemberAdd") { (request: Etcdserverpb_MemberAddRequest, context, responder: UnaryResponder<Etcdserverpb_MemberAddResponse>) in
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAdmin() }) else { return }
                let ours = Set(member.peerURLs)
                if request.peerUrls.contains(where: ours.contains) {
                    return responder.fail(GRPCStatus(peerURLExists))
                }
                responder.fail(GRPCStatus(notEnoughStarted))
            },
            .unary("MemberRemove") { (request: Etcdserverpb_MemberRemoveRequest, context, responder: UnaryResponder<Etcdserverpb_MemberRemoveResponse>) in
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAdmin() }) else { return }
                responder.fail(GRPCStatus(request.id == server.config.memberID ? notEnoughStarted : memberNotFound))
            },
            .unary("MemberUpdate") { (request: Etcdserverpb_MemberUpdateRequest, context, responder: UnaryResponder<Etcdserverpb_MemberUpdateResponse>) in
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAdmin() }) else { return }
                guard request.id == server.config.memberID else { return responder.fail(GRPCStatus(memberNotFound)) }
                member.setPeerURLs(request.peerUrls)
                var resp = Etcdserverpb_MemberUpdateResponse()
                resp.header = header()
                resp.members = members()
                responder.succeed(resp)
            },
            .unary("MemberPromote") { (request: Etcdserverpb_MemberPromoteRequest, context, responder: UnaryResponder<Etcdserverpb_MemberPromoteResponse>) in
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAdmin() }) else { return }
                responder.fail(GRPCStatus(request.id == server.config.memberID ? notLearner : memberNotFound))
            },
        ])
    }

    /// The Cluster service on the membership recorded in the shared log.
    static func clusterMode(_ server: EtcdServer, _ cluster: any ClusterMembership,
                            header: @escaping @Sendable () -> Etcdserverpb_ResponseHeader) -> Service {
        @Sendable func proto(_ members: [ClusterMember]) -> [Etcdserverpb_Member] { members.map(proto) }
        @Sendable func proto(_ m: ClusterMember) -> Etcdserverpb_Member {
            var p = Etcdserverpb_Member()
            p.id = m.id
            p.name = m.name
            p.peerUrls = m.peerURLs
            p.clientUrls = m.clientURLs
            return p
        }
        return Service(name: "etcdserverpb.Cluster", methods: [
            .unary("MemberList") { (_: Etcdserverpb_MemberListRequest, context, responder: UnaryResponder<Etcdserverpb_MemberListResponse>) in
                guard authorized(server, context, responder, tokenCheckedWhenDisabled: false, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAuthenticated() }) else { return }
                cluster.listMembers { result in
                    responder.complete(result.map { members in
                        var resp = Etcdserverpb_MemberListResponse()
                        resp.header = header()
                        resp.members = proto(members)
                        return resp
                    }, on: context)
                }
            },
            .unary("MemberAdd") { (request: Etcdserverpb_MemberAddRequest, context, responder: UnaryResponder<Etcdserverpb_MemberAddResponse>) in
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAdmin() }) else { return }
                if request.isLearner {
                    return responder.fail(GRPCStatus(.failedPrecondition, "rusd: learner members do not exist with --shared-log (every member applies the whole log); add a voting member"))
                }
                cluster.addMember(peerURLs: request.peerUrls) { result in
                    responder.complete(result.map { r in
                        var resp = Etcdserverpb_MemberAddResponse()
                        resp.header = header()
                        resp.member = proto(r.added)
                        resp.members = proto(r.members)
                        return resp
                    }, on: context)
                }
            },
            .unary("MemberRemove") { (request: Etcdserverpb_MemberRemoveRequest, context, responder: UnaryResponder<Etcdserverpb_MemberRemoveResponse>) in
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAdmin() }) else { return }
                cluster.removeMember(id: request.id) { result in
                    responder.complete(result.map { members in
                        var resp = Etcdserverpb_MemberRemoveResponse()
                        resp.header = header()
                        resp.members = proto(members)
                        return resp
                    }, on: context)
                }
            },
            .unary("MemberUpdate") { (request: Etcdserverpb_MemberUpdateRequest, context, responder: UnaryResponder<Etcdserverpb_MemberUpdateResponse>) in
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAdmin() }) else { return }
                cluster.updateMember(id: request.id, peerURLs: request.peerUrls) { result in
                    responder.complete(result.map { members in
                        var resp = Etcdserverpb_MemberUpdateResponse()
                        resp.header = header()
                        resp.members = proto(members)
                        return resp
                    }, on: context)
                }
            },
            .unary("MemberPromote") { (request: Etcdserverpb_MemberPromoteRequest, context, responder: UnaryResponder<Etcdserverpb_MemberPromoteResponse>) in
                guard authorized(server, context, responder, { (caller: AuthCaller) throws(EtcdError) in try caller.requireAdmin() }) else { return }
                cluster.listMembers { result in
                    let outcome: Result<Etcdserverpb_MemberPromoteResponse, EtcdError> = result.flatMap { members in
                        .failure(members.contains { $0.id == request.id } ? .notLearner : .memberNotFound)
                    }
                    responder.complete(outcome, on: context)
                }
            },
        ])
    }
}
