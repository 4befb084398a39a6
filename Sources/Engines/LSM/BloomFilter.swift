// A Bloom filter over the user keys of one table: ~10 bits per key, 7 probes by double hashing.
// Layout: bit array, then one byte holding the probe count.

enum BloomFilter {
    static let bitsPerKey = 10

    @inline(__always) static func hash(_ key: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(key.count)
        var i = 0
        let n = key.count
        while i + 8 <= n {
            h = (h ^ key.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 32
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            tail |= UInt64(key[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ tail) &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
        h = h &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 32
        return h
    }

    static func build(hashes: [UInt64]) -> [UInt8] {
        let k = 7
        var bits = max(hashes.count * bitsPerKey, 64)
        let bytes = (bits + 7) / 8
        bits = bytes * 8
        var out = [UInt8](repeating: 0, count: bytes + 1)
        for h in hashes {
            var a = UInt32(truncatingIfNeeded: h)
            let delta = UInt32(truncatingIfNeeded: h >> 32) | 1
            for _ in 0..<k {
                let pos = Int(a % UInt32(bits))
                out[pos >> 3] |= UInt8(1 << (pos & 7))
                a = a &+ delta
            }
        }
        out[bytes] = UInt8(k)
        return out
    }

    /// False only when the key is certainly absent.
    static func mayContain(_ filter: UnsafeRawBufferPointer, hash h: UInt64) -> Bool {
        guard filter.count >= 2 else { return true }
        let bytes = filter.count - 1
        let bits = UInt32(bytes * 8)
        let k = Int(filter[bytes])
        if k > 30 { return true }
        var a = UInt32(truncatingIfNeeded: h)
        let delta = UInt32(truncatingIfNeeded: h >> 32) | 1
        for _ in 0..<k {
            let pos = Int(a % bits)
            if filter[pos >> 3] & UInt8(1 << (pos & 7)) == 0 { return false }
            a = a &+ delta
        }
        return true
    }
}
