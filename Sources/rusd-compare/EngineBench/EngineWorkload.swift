#if canImport(Glibc)
import Glibc
#endif
import EngineAPI
import Foundation

/// Keys and values of the engine benchmark. Keys use etcd's revision key layout (17 bytes:
/// 8-byte big-endian main revision, '_', 8-byte big-endian sub revision), so key i sorts
/// before key i+1 and puts arrive in key order, as they do in etcd's backend. Values are 256
/// pseudo-random (incompressible) bytes derived from the key index, so reads can be checked.
enum EngineWorkload {
    static let keyBytes = 17
    static let valueBytes = 256

    /// The revision key of index `i` (main revision i+1, sub revision 0).
    static func key(_ i: Int) -> [UInt8] {
        var k = [UInt8](repeating: 0, count: keyBytes)
        let main = UInt64(i + 1).bigEndian
        withUnsafeBytes(of: main) { for j in 0..<8 { k[j] = $0[j] } }
        k[8] = UInt8(ascii: "_")
        return k
    }

    /// The value stored under key `i`: SplitMix64 output from a per-key seed (seeds i * an odd
/// constant unrelated to SplitMix64's increment, so no two values share a run of words and
/// LevelDB's snappy finds nothing to compress).
    static func value(_ i: Int) -> [UInt8] {
        var v = [UInt8](repeating: 0, count: valueBytes)
        var s = SplitMix64(seed: UInt64(i) &* 0xD1B5_4A32_D192_ED03 &+ 1)
        v.withUnsafeMutableBytes { b in
            var off = 0
            while off < valueBytes {
                b.storeBytes(of: s.next(), toByteOffset: off, as: UInt64.self)
                off += 8
            }
        }
        return v
    }

    /// Whether `bytes` is the value of key `i` (checks the first 8 bytes and the length).
    static func isValue(_ bytes: UnsafeRawBufferPointer, of i: Int) -> Bool {
        guard bytes.count == valueBytes else { return false }
        var s = SplitMix64(seed: UInt64(i) &* 0xD1B5_4A32_D192_ED03 &+ 1)
        return bytes.loadUnaligned(as: UInt64.self) == s.next()
    }

    /// The key index of a revision key.
    static func index(of key: UnsafeRawBufferPointer) -> Int {
        guard key.count == keyBytes else { return -1 }
        var main: UInt64 = 0
        for j in 0..<8 { main = main << 8 | UInt64(key[j]) }
        return Int(main) - 1
    }
}

/// Bytes this process has caused to be written to storage (/proc/self/io write_bytes).
func processWriteBytes() -> UInt64 {
    guard let f = fopen("/proc/self/io", "r") else { return 0 }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), f) != nil {
        let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if s.hasPrefix("write_bytes:") {
            return UInt64(s.dropFirst("write_bytes:".count).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        }
    }
    return 0
}
