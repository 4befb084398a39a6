/// Auth failures, with etcd's messages and gRPC codes (etcd's api/v3rpc/rpctypes).
public enum AuthError: Error, Sendable, Hashable {
    case rootUserNotExist, rootRoleNotExist, userAlreadyExist, userEmpty, userNotFound
    case roleAlreadyExist, roleNotFound, roleEmpty, authFailed, permissionDenied
    case roleNotGranted, permissionNotGranted, authNotEnabled, invalidAuthToken, invalidAuthMgmt
    /// A token issued at an older auth revision (JWT tokens: etcd's ErrAuthOldRevision).
    case authOldRevision

    /// gRPC status code (wire number).
    public var grpcCode: Int {
        switch self {
        case .userEmpty, .roleEmpty, .authFailed, .invalidAuthMgmt, .authOldRevision: return 3 // INVALID_ARGUMENT
        case .permissionDenied: return 7 // PERMISSION_DENIED
        case .invalidAuthToken: return 16 // UNAUTHENTICATED
        default: return 9 // FAILED_PRECONDITION
        }
    }

    public var message: String {
        switch self {
        case .rootUserNotExist: return "etcdserver: root user does not exist"
        case .rootRoleNotExist: return "etcdserver: root user does not have root role"
        case .userAlreadyExist: return "etcdserver: user name already exists"
        case .userEmpty: return "etcdserver: user name is empty"
        case .userNotFound: return "etcdserver: user name not found"
        case .roleAlreadyExist: return "etcdserver: role name already exists"
        case .roleNotFound: return "etcdserver: role name not found"
        case .roleEmpty: return "etcdserver: role name is empty"
        case .authFailed: return "etcdserver: authentication failed, invalid user ID or password"
        case .permissionDenied: return "etcdserver: permission denied"
        case .roleNotGranted: return "etcdserver: role is not granted to the user"
        case .permissionNotGranted: return "etcdserver: permission is not granted to the role"
        case .authNotEnabled: return "etcdserver: authentication is not enabled"
        case .invalidAuthToken: return "etcdserver: invalid auth token"
        case .invalidAuthMgmt: return "etcdserver: invalid auth management"
        case .authOldRevision: return "etcdserver: revision of auth store is old"
        }
    }
}
