import Crypto

/// The SHA-256 etcd appends to a snapshot, computed with swift-crypto (BoringSSL's assembly:
/// a 1M-key restore spent 24% of its CPU in MVCC's portable SHA256 at ~110 MB/s).
struct SnapshotDigest {
    static let size = 32
    private var hasher = Crypto.SHA256()

    mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
    }

    func finalize() -> [UInt8] { Array(hasher.finalize()) }
}
