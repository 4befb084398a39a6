#if canImport(Glibc)
import Glibc
#endif
import CCrypt

/// Salted, deliberately slow password hashes: bcrypt ("$2b$") through libxcrypt's crypt_r, the
/// algorithm and default cost (10) etcd uses. Hashing happens before a request enters the log,
/// so applying the log stays cheap and deterministic.
public struct PasswordHasher: Sendable {
    /// bcrypt cost factor (etcd's --bcrypt-cost, 4...31).
    public let cost: Int

    public init(cost: Int = 10) {
        self.cost = max(4, min(31, cost))
    }

    /// A new salted hash of `password`.
    public func hash(_ password: String) -> String? {
        var setting = [CChar](repeating: 0, count: Int(CRYPT_GENSALT_OUTPUT_SIZE))
        guard crypt_gensalt_rn("$2b$", UInt(cost), nil, 0, &setting, Int32(setting.count)) != nil else { return nil }
        return Self.crypt(password, setting: setting)
    }

    /// Whether `password` matches `storedHash` (constant-time comparison of the hashes).
    public func verify(_ password: String, against storedHash: String) -> Bool {
        guard !storedHash.isEmpty,
              let computed = Self.crypt(password, setting: Array(storedHash.utf8CString)) else { return false }
        let a = Array(computed.utf8), b = Array(storedHash.utf8)
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<a.count { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    private static func crypt(_ password: String, setting: [CChar]) -> String? {
        let data = UnsafeMutablePointer<crypt_data>.allocate(capacity: 1)
        defer { data.deallocate() }
        memset(data, 0, MemoryLayout<crypt_data>.size)
        guard let out = crypt_r(password, setting, data) else { return nil }
        let result = String(cString: out)
        // libxcrypt signals failure with a string starting with '*'.
        return result.hasPrefix("*") ? nil : result
    }
}
