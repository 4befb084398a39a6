#if canImport(Glibc)
import Glibc
#endif
import EngineAPI
import Logging

/// Serves the etcd API until SIGTERM/SIGINT. Until the API services land, rusd says so plainly.
func serve(config: ServerConfig, engine: any StorageEngine, logger: Logger) -> Never {
    logger.error("rusd opened its store but does not serve the etcd API yet; exiting")
    try? engine.close()
    exit(3)
}
