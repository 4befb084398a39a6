import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A gRPC server: services, listeners and their connections.
///
/// Listeners are URLs: `http://host:port` serves gRPC over h2c (prior knowledge) and HTTP/1.1
/// on the same port (the first bytes decide); `https://host:port` does the same over TLS
/// (ALPN `h2`, `http/1.1`) using `configuration.tls`. Port 0 picks a free port.
///
/// Usage:
/// ```
/// let server = GRPCServer(services: [kv, watch], configuration: config, group: group)
/// let address = try await server.bind("http://127.0.0.1:2379").get()
/// ...
/// try await server.shutdown(gracePeriod: .seconds(5)).get()
/// ```
public final class GRPCServer: Sendable {
    public let configuration: GRPCServerConfiguration
    private let services: [String: Service]
    private let group: any EventLoopGroup
    private let inboxes: LoopInboxes
    private let state = NIOLockedValueBox(State())

    private struct State {
        var listeners: [any Channel] = []
        var connections: [ObjectIdentifier: any Channel] = [:]
        var closedConnections = 0
        var shuttingDown = false
    }

    public init(services: [Service], configuration: GRPCServerConfiguration = .init(),
                group: any EventLoopGroup) {
        var table: [String: Service] = [:]
        for service in services {
            table[service.name] = configuration.callMonitor.map { service.monitored(by: $0) } ?? service
        }
        self.services = table
        self.configuration = configuration
        self.group = group
        inboxes = LoopInboxes(group: group)
    }

    /// Starts listening on `url` (`http://host:port` or `https://host:port`) and returns the
    /// bound address.
    public func bind(_ url: String) -> EventLoopFuture<SocketAddress> {
        let loop = group.next()
        let secure: Bool
        let rest: Substring
        if url.hasPrefix("http://") {
            secure = false
            rest = url.dropFirst("http://".count)
        } else if url.hasPrefix("https://") {
            secure = true
            rest = url.dropFirst("https://".count)
        } else {
            return loop.makeFailedFuture(GRPCServerError.invalidListenURL(url))
        }
        let hostPort = rest.split(separator: "/", maxSplits: 1).first.map(String.init) ?? ""
        guard let colon = hostPort.lastIndex(of: ":"), let port = Int(hostPort[hostPort.index(after: colon)...]) else {
            return loop.makeFailedFuture(GRPCServerError.invalidListenURL(url))
        }
        var host = String(hostPort[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var sslContext: NIOSSLContext?
        if secure {
            guard let tls = configuration.tls else {
                return loop.makeFailedFuture(GRPCServerError.missingTLSConfiguration(url))
            }
            do {
                sslContext = try makeSSLContext(tls)
            } catch {
                return loop.makeFailedFuture(error)
            }
        }
        let tlsContext = sslContext
        let services = self.services
        let configuration = self.configuration
        let inboxes = self.inboxes
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .childChannelInitializer { [weak self] channel in
                self?.track(channel)
                do {
                    try Self.installPipeline(on: channel, tls: tlsContext, services: services,
                                             configuration: configuration, inboxes: inboxes)
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        return bootstrap.bind(host: host, port: port).flatMapThrowing { channel in
            self.state.withLockedValue { $0.listeners.append(channel) }
            guard let address = channel.localAddress else { throw GRPCServerError.invalidListenURL(url) }
            return address
        }
    }

    /// Installs this server's handlers for one plain (not TLS) connection on `channel`, exactly
    /// as for a connection accepted by a `http://` listener, without tracking it (it is not
    /// counted, and `shutdown` does not reach it). For driving the server from bytes in
    /// process: an `EmbeddedChannel` in tests and the connection fuzz target. Call it on the
    /// channel's event loop, before the channel is active.
    public func configureConnection(_ channel: any Channel) throws {
        try Self.installPipeline(on: channel, tls: nil, services: services, configuration: configuration,
                                 inboxes: inboxes)
    }

    private static func installPipeline(on channel: any Channel, tls: NIOSSLContext?, services: [String: Service],
                                        configuration: GRPCServerConfiguration, inboxes: LoopInboxes) throws {
        let sync = channel.pipeline.syncOperations
        if let tls {
            try sync.addHandler(NIOSSLServerHandler(context: tls))
        }
        try sync.addHandler(ProtocolSniffer(
            makeHTTP2Handler: { ServerConnectionHandler(services: services, configuration: configuration, inboxes: inboxes) },
            http1Handler: configuration.http1Handler,
            maxPlainBodySize: configuration.maxPlainRequestBodySize,
            handshakeTimeout: configuration.limits.handshakeTimeout))
    }

    private func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let refuse = state.withLockedValue { s -> Bool in
            if s.shuttingDown { return true }
            s.connections[id] = channel
            return false
        }
        if refuse {
            channel.close(promise: nil)
            return
        }
        channel.closeFuture.whenComplete { [weak self] _ in
            self?.state.withLockedValue { s in
                s.connections.removeValue(forKey: id)
                s.closedConnections += 1
            }
        }
    }

    /// The number of open client connections.
    public var connectionCount: Int { state.withLockedValue { $0.connections.count } }

    /// The number of client connections closed since the server started.
    public var closedConnectionCount: Int { state.withLockedValue { $0.closedConnections } }

    /// Stops accepting connections, sends GOAWAY on every connection, lets calls in flight
    /// finish, and force-closes what is still open after `gracePeriod`.
    public func shutdown(gracePeriod: TimeAmount = .seconds(10)) -> EventLoopFuture<Void> {
        let (listeners, connections) = state.withLockedValue { s in
            s.shuttingDown = true
            return (s.listeners, Array(s.connections.values))
        }
        let loop = group.next()
        let listenersClosed = EventLoopFuture.andAllComplete(
            listeners.map { $0.close() }, on: loop)
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(GracefulShutdownEvent())
        }
        let drained = EventLoopFuture.andAllComplete(connections.map { $0.closeFuture }, on: loop)
        let timer = loop.scheduleTask(in: gracePeriod) {
            for connection in connections { connection.close(promise: nil) }
        }
        return listenersClosed.and(drained).map { _ in timer.cancel() }
    }

    private func makeSSLContext(_ tls: GRPCServerTLS) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(tls.certificateChainFile).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: tls.privateKeyFile, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        configuration.applicationProtocols = ["h2", "http/1.1"]
        if let ca = tls.trustedCAFile {
            configuration.trustRoots = .file(ca)
        }
        if tls.requireClientCertificate {
            configuration.certificateVerification = .noHostnameVerification
        }
        return try NIOSSLContext(configuration: configuration)
    }
}

public enum GRPCServerError: Error, CustomStringConvertible {
    case invalidListenURL(String)
    case missingTLSConfiguration(String)

    public var description: String {
        switch self {
        case .invalidListenURL(let url): return "invalid listen URL \"\(url)\" (want http://host:port or https://host:port)"
        case .missingTLSConfiguration(let url): return "listen URL \"\(url)\" needs TLS settings (certificate and key)"
        }
    }
}
