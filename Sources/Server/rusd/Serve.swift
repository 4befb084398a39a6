#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import EngineAPI
import EtcdAPI
import EtcdServer
import GRPCTransport
import Logging
import MVCC
import NIOCore
import NIOPosix
import WatchHub

/// etcd adds this much to --max-request-bytes for the gRPC receive limit (grpcOverheadBytes).
private let grpcOverheadBytes = 512 * 1024

/// Serves the etcd API on every --listen-client-urls until SIGTERM or SIGINT, then shuts down
/// gracefully: stop accepting, GOAWAY and drain in-flight calls, finish accepted writes, close
/// the engine.
func serve(config: ServerConfig, engine: any StorageEngine, logger: Logger) -> Never {
    let identity = MemberIdentity(peerURLs: config.advertisePeerURLs.map(\.description),
                                  clusterToken: config.initialClusterToken)
    let cluster = SharedLogSetup.open(config, logger: logger)
    var serverConfig = EtcdServerConfig(clusterID: cluster?.info.clusterID ?? identity.clusterID,
                                        memberID: cluster?.memberID ?? identity.memberID)
    serverConfig.maxRequestBytes = config.maxRequestBytes
    serverConfig.maxTxnOps = config.maxTxnOps
    serverConfig.authTokenTTLSeconds = config.authTokenTTL
    serverConfig.authTokens = config.authTokens
    serverConfig.bcryptCost = config.bcryptCost
    if let checkpointed = engine as? LogCheckpointedEngine {
        serverConfig.durableAppliedIndex = { checkpointed.durableAppliedIndex }
    }
    // The responses of a group commit reach each event loop as one task (see LoopInbox).
    serverConfig.completionBatch = { LoopInbox.batching($0) }

    let etcd: EtcdServer
    // Cluster mode: set when the log was trimmed past this member; it then runs again (Rebootstrap).
    let rebootstrap = Rebootstrap()
    do {
        let record = "{\"id\":\"\(String(serverConfig.memberID, radix: 16))\",\"name\":\"\(config.name)\","
            + "\"peerURLs\":[\(config.advertisePeerURLs.map { "\"\($0)\"" }.joined(separator: ","))]}"
        try StoreBootstrap.bootstrapIfNew(engine, memberID: serverConfig.memberID, memberRecord: Array(record.utf8))
        etcd = try EtcdServer(engine: engine, config: serverConfig,
                              sharedLog: cluster?.makeLog(name: config.name, clientURLs: config.advertiseClientURLs.map(\.description),
                                                          engine: engine, config: config, rebootstrap: rebootstrap, logger: logger))
    } catch {
        fail("cannot start the server on \(config.dataDirectory): \(error)")
    }
    logger.info("opened the MVCC store", metadata: [
        "revision": "\(etcd.currentRevision)", "applied-index": "\(etcd.appliedIndex)",
        "member-id": "\(String(serverConfig.memberID, radix: 16))", "cluster-id": "\(String(serverConfig.clusterID, radix: 16))",
    ])

    let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
    var transport = GRPCServerConfiguration()
    transport.maxReceiveMessageSize = config.maxRequestBytes + grpcOverheadBytes
    transport.maxConcurrentStreams = config.maxConcurrentStreams
    transport.keepalive.interval = TimeAmount(config.keepaliveInterval)
    transport.keepalive.timeout = TimeAmount(config.keepaliveTimeout)
    transport.keepalive.minClientPingInterval = TimeAmount(config.keepaliveMinTime)
    let member = LocalMember(name: config.name, peerURLs: config.advertisePeerURLs.map(\.description),
                             clientURLs: config.advertiseClientURLs.map(\.description),
                             quotaBackendBytes: config.quotaBackendBytes, alarms: etcd.alarms, cluster: cluster?.clusterMembership)
    let grpcMetrics = GRPCServerMetrics(handlingTime: config.metrics == "extensive")
    transport.callMonitor = grpcMetrics
    var watchConfig = WatchHubConfig()
    watchConfig.progressNotifyInterval = config.progressNotifyInterval
    let watchHub = WatchHub(store: etcd.store, config: watchConfig)
    let http = HTTPEndpoints(server: etcd, member: member, grpcMetrics: grpcMetrics, watchHub: watchHub)
    let quota = QuotaMonitor(server: etcd, member: member)
    let services = EtcdServices.all(etcd, member: member, watchHub: watchHub)
    transport.http1Handler = http.handler(gateway: Gateway(services: services, monitor: grpcMetrics))
    do {
        transport.tls = try TLSClientSettings.resolve(config, logger: logger)
    } catch {
        fail("\(error)")
    }
    let health = HealthService()
    let grpc = GRPCServer(services: services
                          + [health.service], configuration: transport, group: group)

    for url in config.listenClientURLs {
        do {
            let address = try grpc.bind(url.description).wait()
            let hostPort = "\(address.ipAddress ?? url.host):\(address.port ?? url.port)"
            if url.isTLS {
                logger.info("serving client traffic securely on \(hostPort)", metadata: ["address": "\(hostPort)"])
            } else {
                logger.warning("serving insecure client requests on \(hostPort), this is strongly discouraged!", metadata: ["address": "\(hostPort)"])
            }
        } catch {
            fail("listen tcp \(url.host):\(url.port): \(bindErrorText(error))")
        }
    }
    // --listen-metrics-urls: the HTTP endpoints (/metrics, /health, ...) without the etcd API
    // (gRPC calls there answer UNIMPLEMENTED).
    var metricsTransport = GRPCServerConfiguration()
    metricsTransport.http1Handler = http.handler(gateway: nil)
    metricsTransport.tls = transport.tls
    let metrics = GRPCServer(services: [], configuration: metricsTransport, group: group)
    for url in config.listenMetricsURLs {
        do {
            let address = try metrics.bind(url.description).wait()
            logger.info("serving metrics on \(address.ipAddress ?? url.host):\(address.port ?? url.port)")
        } catch {
            fail("listen tcp \(url.host):\(url.port): \(bindErrorText(error))")
        }
    }
    logger.info("ready to serve client requests", metadata: ["engine": "\(config.engine)"])
    let heapTrimmer = trimHeapAfterConnectionsClose(closedConnections: { grpc.closedConnectionCount })
    // --auto-compaction-retention: compactions through the ordered log, as a client's Compact.
    let autoCompactor = config.autoCompaction.map { AutoCompactor(policy: $0, server: etcd, logger: logger) }
    autoCompactor?.start()

    let shutdown = DispatchSemaphore(value: 0)
    var sources: [any DispatchSourceSignal] = []
    for sig in [SIGTERM, SIGINT] {
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler { shutdown.signal() }
        source.resume()
        sources.append(source)
    }
    shutdown.wait()
    heapTrimmer.cancel()
    autoCompactor?.stop()
    logger.info("received a termination signal; shutting down")
    health.setStatus(.notServing)
    quota.stop()
    try? grpc.shutdown(gracePeriod: .seconds(5)).wait()
    try? metrics.shutdown(gracePeriod: .seconds(1)).wait()
    etcd.close()
    do {
        try engine.close()
    } catch {
        logger.error("closing the engine failed", metadata: ["error": "\(error)"])
        exit(1)
    }
    try? group.syncShutdownGracefully()
    logger.info("stopped serving; store closed")
    _ = sources
    if rebootstrap.isRequested {
        logger.notice("starting again to catch up from the shared log's newest snapshot")
        rebootstrap.execAgain()
        fail("cannot run rusd again to catch up: \(String(cString: strerror(errno)))")
    }
    exit(0)
}

/// Go's wording for bind failures ("bind: address already in use").
private func bindErrorText(_ error: any Error) -> String {
    if let io = error as? IOError {
        return "bind: \(String(cString: strerror(io.errnoCode)).lowercased())"
    }
    return "\(error)"
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
