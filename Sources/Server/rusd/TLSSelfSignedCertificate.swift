#if canImport(Glibc)
import Glibc
#endif
import Crypto
import FoundationEssentials
import Logging
import SwiftASN1
import X509

/// --auto-tls: the self-signed server certificate etcd's transport.SelfCert makes.
///
/// Files: DIRECTORY/cert.pem (CERTIFICATE) and DIRECTORY/key.pem (PKCS#8 PRIVATE KEY, mode
/// 0600); the directory is created with mode 0700. When both files already exist they are
/// reused as they are (etcd does the same, so a restart keeps the certificate clients pinned).
///
/// Certificate: subject and issuer O=etcd, a random 128-bit serial number, valid from now for
/// 365 days, KeyUsage digitalSignature + keyEncipherment, ExtendedKeyUsage serverAuth,
/// BasicConstraints CA:FALSE, and a SubjectAlternativeName entry per listen host (an IP
/// address when the host parses as one, a DNS name otherwise).
/// One difference from etcd: the key is ECDSA P-256 (etcd 3.4 uses P-521), the curve every
/// TLS stack accepts for server keys.
enum SelfSignedCertificate {
    struct Files {
        let certificateFile: String
        let privateKeyFile: String
    }

    static func ensure(in directory: String, hosts: [String], logger: Logger) throws -> Files {
        let files = Files(certificateFile: directory + "/cert.pem", privateKeyFile: directory + "/key.pem")
        try makeDirectories(directory)
        if access(files.certificateFile, F_OK) == 0 && access(files.privateKeyFile, F_OK) == 0 {
            logger.info("reusing the self-signed client certificate", metadata: ["path": "\(files.certificateFile)"])
            return files
        }
        let (certificatePEM, keyPEM) = try generate(hosts: hosts)
        try write(certificatePEM + "\n", to: files.certificateFile, mode: 0o644)
        try write(keyPEM + "\n", to: files.privateKeyFile, mode: 0o600)
        logger.info("generated a self-signed client certificate (--auto-tls)",
                    metadata: ["path": "\(files.certificateFile)", "hosts": "\(hosts.joined(separator: ","))"])
        return files
    }

    /// Returns the certificate and private key, PEM encoded.
    static func generate(hosts: [String], now: Date = Date()) throws -> (certificate: String, privateKey: String) {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { OrganizationName("etcd") }
        var serial = [UInt8](repeating: 0, count: 16)
        for i in serial.indices { serial[i] = UInt8.random(in: 0...255) }
        serial[0] &= 0x7f
        var alternativeNames: [GeneralName] = []
        for host in Set(hosts).sorted() {
            if let address = ipAddressBytes(host) {
                alternativeNames.append(.ipAddress(ASN1OctetString(contentBytes: address[...])))
            } else {
                alternativeNames.append(.dnsName(host))
            }
        }
        let extensions = try Certificate.Extensions {
            Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
            try ExtendedKeyUsage([.serverAuth])
            Critical(BasicConstraints.notCertificateAuthority)
            SubjectAlternativeNames(alternativeNames)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(bytes: serial),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now, notValidAfter: now.addingTimeInterval(365 * 24 * 3600),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: Certificate.PrivateKey(key))
        return (try certificate.serializeAsPEM().pemString, key.pemRepresentation)
    }

    /// The 4 or 16 bytes of an IPv4 or IPv6 literal; nil for a DNS name.
    static func ipAddressBytes(_ host: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    private static func makeDirectories(_ directory: String) throws {
        var path = ""
        for component in directory.split(separator: "/", omittingEmptySubsequences: true) {
            path += (path.isEmpty && !directory.hasPrefix("/") ? "" : "/") + component
            if mkdir(path, 0o700) != 0 && errno != EEXIST {
                throw TLSClientSettings.Failure(description: "cannot create directory \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    private static func write(_ text: String, to path: String, mode: mode_t) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
        guard fd >= 0 else {
            throw TLSClientSettings.Failure(description: "open \(path): \(String(cString: strerror(errno)).lowercased())")
        }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw TLSClientSettings.Failure(description: "write \(path): \(String(cString: strerror(errno)).lowercased())")
            }
            offset += n
        }
        guard fsync(fd) == 0 else {
            throw TLSClientSettings.Failure(description: "fsync \(path): \(String(cString: strerror(errno)).lowercased())")
        }
    }
}
