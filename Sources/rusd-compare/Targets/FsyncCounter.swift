import Foundation

/// Reads the server's fsync count from its Prometheus `/metrics` on the client URL, when it
/// exposes one: etcd's `etcd_disk_wal_fsync_duration_seconds_count`, or `rusd_fsync_total`.
enum FsyncCounter {
    static let metricNames = ["etcd_disk_wal_fsync_duration_seconds_count", "rusd_fsync_total"]

    static func read(endpoint: String) -> Double? {
        guard let url = URL(string: endpoint), let host = url.host, let port = url.port,
              let body = httpGet(host: host, port: port, path: "/metrics") else { return nil }
        for line in body.split(separator: "\n") where !line.hasPrefix("#") {
            for name in metricNames where line.hasPrefix(name + " ") || line.hasPrefix(name + "{") {
                if let value = line.split(separator: " ").last.flatMap({ Double($0) }) { return value }
            }
        }
        return nil
    }

    /// A minimal HTTP/1.1 GET over a blocking socket (1 s timeouts); the body, or nil.
    private static func httpGet(host: String, port: Int, path: String) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr(host)
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return nil }
        let request = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n\r\n"
        guard request.withCString({ send(fd, $0, strlen($0), 0) }) > 0 else { return nil }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            response.append(contentsOf: buffer[0..<n])
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200"), let split = text.range(of: "\r\n\r\n") else { return nil }
        return String(text[split.upperBound...])
    }
}
