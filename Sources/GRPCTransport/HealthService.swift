import NIOConcurrencyHelpers

/// The standard `grpc.health.v1.Health` service (Check and Watch).
///
/// The overall server is the service name "" and starts SERVING; set others with `setStatus`.
/// Check of an unknown service fails with NOT_FOUND "unknown service"; Watch of one reports
/// SERVICE_UNKNOWN and then any later change.
public final class HealthService: Sendable {
    public typealias Status = Grpc_Health_V1_HealthCheckResponse.ServingStatus
    private typealias Watcher = ServerStream<Grpc_Health_V1_HealthCheckResponse>

    private struct State {
        var statuses: [String: Status] = ["": .serving]
        var watchers: [String: [ObjectIdentifier: Watcher]] = [:]
    }

    private let state = NIOLockedValueBox(State())

    public init() {}

    /// Sets the status of `service` ("" for the whole server) and notifies its watchers.
    public func setStatus(_ status: Status, for service: String = "") {
        let watchers = state.withLockedValue { s -> [Watcher] in
            let old = s.statuses.updateValue(status, forKey: service)
            return old == status ? [] : Array(s.watchers[service, default: [:]].values)
        }
        var response = Grpc_Health_V1_HealthCheckResponse()
        response.status = status
        for watcher in watchers { watcher.send(response) }
    }

    /// The gRPC service to register with a `GRPCServer`.
    public var service: Service {
        Service(name: "grpc.health.v1.Health", methods: [
            .unary("Check") { (request: Grpc_Health_V1_HealthCheckRequest, _, responder: UnaryResponder<Grpc_Health_V1_HealthCheckResponse>) in
                guard let status = self.state.withLockedValue({ $0.statuses[request.service] }) else {
                    responder.fail(GRPCStatus(.notFound, "unknown service"))
                    return
                }
                var response = Grpc_Health_V1_HealthCheckResponse()
                response.status = status
                responder.succeed(response)
            },
            .serverStreaming("Watch") { (request: Grpc_Health_V1_HealthCheckRequest, stream: Watcher) in
                let name = request.service
                let id = ObjectIdentifier(stream)
                let current = self.state.withLockedValue { s -> Status in
                    s.watchers[name, default: [:]][id] = stream
                    return s.statuses[name] ?? .serviceUnknown
                }
                stream.setOnCancel {
                    self.state.withLockedValue { _ = $0.watchers[name]?.removeValue(forKey: id) }
                }
                var response = Grpc_Health_V1_HealthCheckResponse()
                response.status = current
                stream.send(response)
            },
        ])
    }
}
