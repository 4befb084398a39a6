/// The keys and values of the store-size sweep: Kubernetes-like names
/// `/registry/<resource>/<namespace>/<name>` and 256-byte incompressible values.
///
/// Key `i` is a pure function of `i`, so the loader, the put phase and the range phase agree on
/// the key space [0, N) without holding a table of N keys. The first `listSize` keys all live
/// under `listPrefix` (one namespace of configmaps): the list phase reads exactly that prefix,
/// the same 10,000 keys at every store size.
enum SweepKeys {
    static let listPrefix = "/registry/configmaps/sweep-list/"
    static let listSize = 10_000
    static let valueSize = 256
    static let resources = ["pods", "events", "replicasets", "secrets", "services", "endpointslices", "leases", "deployments"]
    /// Namespaces the keys above `listSize` are spread over.
    static let namespaces = 500

    /// Key `i` (i >= 0).
    static func key(_ i: Int) -> [UInt8] {
        if i < listSize { return Array("\(listPrefix)cm-\(padded(i, 5))".utf8) }
        let resource = resources[i % resources.count]
        let namespace = (i / resources.count) % namespaces
        return Array("/registry/\(resource)/ns-\(padded(namespace, 3))/\(resource.dropLast())-\(padded(i, 8))".utf8)
    }

    /// The value of key `i` at write number `version` (0 = created): 256 pseudo-random bytes, so
    /// engines that compress (leveldb, rocksdb) store what a real object costs, not a pattern.
    static func value(_ i: Int, version: Int) -> [UInt8] {
        // SplitMix64's state advances by a constant, so seeds that differ by multiples of it give
        // shifted copies of one stream (values of neighbouring keys would share 248 of 256 bytes
        // and compress 3x). Seeding from a first output makes the streams unrelated.
        var seeder = SplitMix64(seed: UInt64(truncatingIfNeeded: i) << 8 | UInt64(truncatingIfNeeded: version & 0xff))
        var rng = SplitMix64(seed: seeder.next())
        var bytes = [UInt8](repeating: 0, count: valueSize)
        var offset = 0
        while offset < valueSize {
            let word = rng.next()
            for shift in stride(from: 0, to: 64, by: 8) where offset < valueSize {
                bytes[offset] = UInt8(truncatingIfNeeded: word >> UInt64(shift))
                offset += 1
            }
        }
        return bytes
    }

    /// `n` in decimal, left-padded with zeros to `width` digits (n >= 0).
    static func padded(_ n: Int, _ width: Int) -> String {
        let digits = String(n)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }

    /// "10k", "1M", ... for a store size.
    static func label(_ size: Int) -> String {
        if size >= 1_000_000, size % 1_000_000 == 0 { return "\(size / 1_000_000)M" }
        if size >= 1_000, size % 1_000 == 0 { return "\(size / 1_000)k" }
        return String(size)
    }
}
