import NIOCore

/// Settings of a `GRPCServer`. Defaults follow grpc-go as etcd configures it.
public struct GRPCServerConfiguration: Sendable {
    /// Largest request message accepted; larger ones end the call with RESOURCE_EXHAUSTED
    /// "grpc: received message larger than max (N vs. M)". etcd: --max-request-bytes + 512 KiB.
    public var maxReceiveMessageSize: Int = 4 * 1024 * 1024
    /// Largest body of a plain HTTP request (HTTP/1.1, or HTTP/2 without gRPC's content type);
    /// a larger one is answered 413 and not served. Room for the largest message a gRPC call
    /// may carry, written as JSON with its bytes in base64 (4/3 of their size), plus 64 KiB.
    public var maxPlainRequestBodySize: Int {
        let (base64, overflow) = (maxReceiveMessageSize / 3 + 1).multipliedReportingOverflow(by: 4)
        return overflow ? Int.max : base64 &+ min(64 << 10, Int.max - base64)
    }
    /// SETTINGS_MAX_CONCURRENT_STREAMS advertised to clients (etcd: --max-concurrent-streams,
    /// default unlimited). Streams beyond it are refused by HTTP/2 (REFUSED_STREAM).
    public var maxConcurrentStreams: UInt32 = UInt32.max
    /// SETTINGS_INITIAL_WINDOW_SIZE for request streams, and the connection's receive window.
    public var initialStreamWindowSize: Int32 = 1 << 20
    public var connectionWindowSize: Int32 = 4 << 20
    /// Server keepalive and the client ping policy.
    public var keepalive = Keepalive()
    /// What one connection may cost the server (see `Limits`).
    public var limits = Limits()
    /// Response-stream backpressure thresholds (see `ServerStream`). Small, so that a stream
    /// whose client reads slowly holds little encoded data of its own: producers that can
    /// wait (Watch, Snapshot) keep their backlog in their own, shared form instead (the watch
    /// hub's outboxes share one event list among all the watchers that get it).
    public var streamHighWatermark = 64 << 10
    public var streamLowWatermark = 16 << 10
    /// Serves HTTP/1.1 requests arriving on the same port, and non-gRPC HTTP/2 requests
    /// (nil: HTTP/1.1 gets 404, HTTP/2 gets 415).
    public var http1Handler: HTTP1Handler?
    /// Observes every call to a registered method (e.g. to count calls); nil: none.
    public var callMonitor: (any GRPCCallMonitor)?
    /// TLS settings used by `https://` listeners.
    public var tls: GRPCServerTLS?

    public init() {}

    /// Keepalive settings (etcd's --grpc-keepalive-* flags).
    public struct Keepalive: Sendable {
        /// After this long without receiving anything the server pings the client
        /// (--grpc-keepalive-interval, default 2h).
        public var interval: TimeAmount = .hours(2)
        /// Close the connection if the ping is not answered within this long
        /// (--grpc-keepalive-timeout, default 20s).
        public var timeout: TimeAmount = .seconds(20)
        /// Clients pinging more often than this (more than twice in a row) get GOAWAY
        /// ENHANCE_YOUR_CALM "too_many_pings" and the connection closes, as in grpc-go
        /// (--grpc-keepalive-min-time, default 5s).
        public var minClientPingInterval: TimeAmount = .seconds(5)
        /// Whether clients may ping while they have no active stream at the min interval
        /// (grpc-go's PermitWithoutStream; etcd: false, then such pings are allowed every 2h).
        public var permitWithoutStream = false

        public init() {}
    }
}

extension GRPCServerConfiguration {
    /// Per-connection bounds that keep one misbehaving client from starving the others.
    /// A peer that exceeds one gets GOAWAY ENHANCE_YOUR_CALM (or a stream reset where HTTP/2
    /// says so) and its memory is released when it goes.
    public struct Limits: Sendable {
        /// SETTINGS_MAX_HEADER_LIST_SIZE, advertised and enforced (RFC 9113 size: name + value +
        /// 32 per field, after HPACK decoding, so a small compressed block that expands past it
        /// is refused). A request over it is reset with FRAME_SIZE_ERROR, as grpc-go does.
        /// grpc-go's default is 16 MiB; ours is the 16 KiB gRPC core enforces: etcd clients
        /// send a few hundred bytes, and the header list of every open stream is held.
        public var maxHeaderListSize = 16 << 10
        /// The client must complete the HTTP/2 handshake (preface and SETTINGS) within this
        /// long, else the connection is closed (grpc-go's ConnectionTimeout, default 120 s).
        public var handshakeTimeout: TimeAmount = .seconds(120)
        /// Frames that make no progress (SETTINGS, WINDOW_UPDATE, PRIORITY, RST_STREAM, empty
        /// DATA, oversized header lists) accepted in a row while neither side sends a request or
        /// response byte; one more gets GOAWAY ENHANCE_YOUR_CALM.
        public var maxFramesWithoutProgress = 1000
        /// Requests started, and time spent, while handling one read event: past either, the
        /// rest of the bytes read wait for a later event-loop turn, after the loop has served its
        /// other connections, so one pipelining connection cannot hold its loop.
        public var maxRequestsPerRead = 128
        public var maxTimePerRead: TimeAmount = .milliseconds(5)
        /// Unary response bytes a connection may hold unsent (its peer's flow-control window
        /// closed or its socket full). Beyond it, new unary requests wait until the peer reads...
        public var maxQueuedResponseBytes = 32 << 20
        /// ...and at most this many may wait; one more gets GOAWAY ENHANCE_YOUR_CALM.
        public var maxWaitingRequests = 1024

        public init() {}
    }
}

/// TLS settings for `https://` listeners. ALPN offers `h2` and `http/1.1`.
public struct GRPCServerTLS: Sendable {
    public var certificateChainFile: String
    public var privateKeyFile: String
    /// CA bundle for verifying client certificates.
    public var trustedCAFile: String?
    /// Require and verify a client certificate (etcd's --client-cert-auth).
    public var requireClientCertificate: Bool

    public init(certificateChainFile: String, privateKeyFile: String,
                trustedCAFile: String? = nil, requireClientCertificate: Bool = false) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.trustedCAFile = trustedCAFile
        self.requireClientCertificate = requireClientCertificate
    }
}

/// An HTTP/1.1 request received on a gRPC port.
public struct HTTP1Request: Sendable {
    public var method: String
    /// The request target as sent (path and query).
    public var uri: String
    /// The path without the query.
    public var path: String { String(uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0]) }
    /// Header fields, names lowercased.
    public var headers: [(String, String)]
    public var body: [UInt8]
}

/// The answer to an `HTTP1Request`.
public struct HTTP1Response: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    public var headers: [(String, String)]
    /// A body sent as it is produced, after `body` (see `HTTP1BodyStream`); nil: `body` is all.
    public var bodyStream: HTTP1BodyStream?

    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: [UInt8],
                headers: [(String, String)] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
        self.init(status: status, contentType: contentType, body: Array(body.utf8))
    }
}

/// Answers HTTP/1.1 requests; the future may complete on any event loop.
public typealias HTTP1Handler = @Sendable (HTTP1Request, any EventLoop) -> EventLoopFuture<HTTP1Response>
