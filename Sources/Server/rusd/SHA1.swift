/// SHA-1 (FIPS 180-4), used only to derive etcd-compatible member and cluster IDs
/// (etcd: first 8 bytes of SHA-1, big-endian). Not used for anything that needs security.
enum SHA1 {
    static func hash(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
        var data = message
        let bitLength = UInt64(message.count) * 8
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        for i in (0..<8).reversed() { data.append(UInt8(truncatingIfNeeded: bitLength >> (UInt64(i) * 8))) }
        var w = [UInt32](repeating: 0, count: 80)
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for i in 0..<16 {
                let b = chunk + i * 4
                w[i] = UInt32(data[b]) << 24 | UInt32(data[b + 1]) << 16 | UInt32(data[b + 2]) << 8 | UInt32(data[b + 3])
            }
            for i in 16..<80 {
                let x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]
                w[i] = x << 1 | x >> 31
            }
            var (a, b, c, d, e) = (h[0], h[1], h[2], h[3], h[4])
            for i in 0..<80 {
                let f: UInt32, k: UInt32
                switch i {
                case 0..<20: f = (b & c) | (~b & d); k = 0x5A827999
                case 20..<40: f = b ^ c ^ d; k = 0x6ED9EBA1
                case 40..<60: f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC
                default: f = b ^ c ^ d; k = 0xCA62C1D6
                }
                let temp = (a << 5 | a >> 27) &+ f &+ e &+ k &+ w[i]
                e = d; d = c; c = b << 30 | b >> 2; b = a; a = temp
            }
            h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e
        }
        return h.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - $0 * 8)) } }
    }
}

/// Member and cluster IDs derived as etcd derives them for a new single-member cluster:
/// member ID = SHA-1(sorted peer URLs joined + cluster token)[0..<8] big-endian;
/// cluster ID = SHA-1(member IDs as 8-byte big-endian, sorted)[0..<8] big-endian.
/// Stable across restarts because they depend only on flags.
struct MemberIdentity: Sendable {
    let memberID: UInt64
    let clusterID: UInt64

    init(peerURLs: [String], clusterToken: String) {
        let joined = peerURLs.sorted().joined() + clusterToken
        memberID = Self.firstWord(SHA1.hash(Array(joined.utf8)))
        var idBytes: [UInt8] = []
        for i in (0..<8).reversed() { idBytes.append(UInt8(truncatingIfNeeded: memberID >> (UInt64(i) * 8))) }
        clusterID = Self.firstWord(SHA1.hash(idBytes))
    }

    private static func firstWord(_ digest: [UInt8]) -> UInt64 {
        digest[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
    }
}
