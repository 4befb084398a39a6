#if canImport(Glibc)
import Glibc
#endif
import GRPCTransport
import Logging
import NIOSSL

/// The TLS settings of the client listeners, resolved from --cert-file, --key-file,
/// --trusted-ca-file, --client-cert-auth and --auto-tls the way etcd resolves them:
///
/// - explicit --cert-file/--key-file win; with them --auto-tls is ignored (with a warning);
/// - --auto-tls alone generates (or reuses) a self-signed certificate in
///   DATA_DIR/fixtures/client/{cert.pem,key.pem} for the hosts of --listen-client-urls;
/// - --client-cert-auth requires and verifies a client certificate against --trusted-ca-file
///   (a TLS handshake without one fails);
/// - every file is read once at start, so a missing or unreadable file is a start-up error
///   naming the file (Go's wording: "open FILE: no such file or directory"), never a
///   handshake failure later.
///
/// Auth hook: with --client-cert-auth, `CallContext.peerCommonName` carries the verified client
/// certificate's common name (nil on plain connections and when no certificate was presented).
/// etcd (v3_server.go authInfoFromCtx) takes the user from the "token" metadata first and,
/// only when there is none and client-cert-auth is on, from that common name (AuthInfoFromTLS);
/// the auth service resolves callers the same way with `context.peerCommonName`.
enum TLSClientSettings {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The transport's TLS settings, or nil when no listener is https and no files are given.
    static func resolve(_ config: ServerConfig, logger: Logger) throws -> GRPCServerTLS? {
        let anyTLSListener = config.listenClientURLs.contains(where: \.isTLS)
        var certFile = config.certFile
        var keyFile = config.keyFile
        if config.autoTLS {
            if !certFile.isEmpty || !keyFile.isEmpty {
                logger.warning("ignoring client auto TLS since certs given")
            } else {
                let directory = config.dataDirectory + "/fixtures/client"
                let hosts = config.listenClientURLs.map(\.host)
                let files = try SelfSignedCertificate.ensure(in: directory, hosts: hosts, logger: logger)
                certFile = files.certificateFile
                keyFile = files.privateKeyFile
            }
        }
        if certFile.isEmpty && keyFile.isEmpty {
            return nil
        }
        if !anyTLSListener {
            logger.warning("scheme is HTTP while key and cert files are present; ignoring key and cert files",
                           metadata: ["client-url": "\(config.listenClientURLs.map(\.description).joined(separator: ","))"])
            return nil
        }
        try checkCertificates(file: certFile)
        try checkPrivateKey(file: keyFile)
        if !config.trustedCAFile.isEmpty {
            try checkCertificates(file: config.trustedCAFile)
        }
        if config.clientCertAuth && config.trustedCAFile.isEmpty {
            // Go's tls.Config with RequireAndVerifyClientCert and no ClientCAs verifies against
            // the system roots; NIOSSL does the same with its default trust roots.
            logger.warning("--client-cert-auth without --trusted-ca-file: client certificates are verified against the system roots")
        }
        return GRPCServerTLS(certificateChainFile: certFile, privateKeyFile: keyFile,
                             trustedCAFile: config.trustedCAFile.isEmpty ? nil : config.trustedCAFile,
                             requireClientCertificate: config.clientCertAuth)
    }

    /// Go's wording for a file that cannot be opened: "open PATH: no such file or directory".
    private static func readable(_ file: String) throws {
        let fd = open(file, O_RDONLY)
        guard fd >= 0 else {
            throw Failure(description: "open \(file): \(String(cString: strerror(errno)).lowercased())")
        }
        close(fd)
    }

    private static func checkCertificates(file: String) throws {
        try readable(file)
        // Go's wording, plus the file name.
        guard let certificates = try? NIOSSLCertificate.fromPEMFile(file), !certificates.isEmpty else {
            throw Failure(description: "tls: failed to find any PEM data in certificate input: \(file)")
        }
    }

    private static func checkPrivateKey(file: String) throws {
        try readable(file)
        guard (try? NIOSSLPrivateKey(file: file, format: .pem)) != nil else {
            throw Failure(description: "tls: failed to find any PEM data in key input: \(file)")
        }
    }
}
