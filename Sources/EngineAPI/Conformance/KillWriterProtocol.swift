/// What `engine-kill-writer` writes and how the hard-kill check verifies it. Batch n holds
/// `keysPerBatch` keys "kill/b/<n>/<j>" with values derived from (n, j) (sizes 0 B to 64 KiB),
/// plus "kill/last" = n; a partial batch shows as missing keys or a kill/last that disagrees.
package enum KillWriterProtocol {
    package static let keysPerBatch = 4
    package static let lastKey = Array("kill/last".utf8)
    package static let batchPrefix = Array("kill/b/".utf8)

    package static func key(_ n: Int, _ j: Int) -> [UInt8] { batchPrefix + Array("\(pad(n, 10))/\(j)".utf8) }

    package static func value(_ n: Int, _ j: Int) -> [UInt8] {
        let sizes = [0, 24, 700, n % 16 == 0 ? 65_536 : 3000]
        let header = Array("\(n)/\(j):".utf8)
        let size = max(sizes[j % sizes.count], 0)
        var out = header
        out.reserveCapacity(header.count + size)
        for i in 0..<size { out.append(UInt8(truncatingIfNeeded: n &* 31 &+ j &* 7 &+ i)) }
        return out
    }

    package static func batch(_ n: Int) -> WriteBatch {
        var b = WriteBatch()
        for j in 0..<keysPerBatch { b.put(key(n, j), value(n, j)) }
        b.put(lastKey, Array(String(n).utf8))
        return b
    }

    /// The number of the next batch to write (0 for an empty store).
    package static func nextBatchNumber(_ engine: any StorageEngine) throws -> Int {
        guard let last = try engine.get(lastKey) else { return 0 }
        return (Int(String(decoding: last, as: UTF8.self)) ?? -1) + 1
    }

    /// Checks that batches 0...k are each complete and nothing else is present; returns k
    /// (-1 for none). Throws a description of the first inconsistency.
    package static func verify(_ engine: any StorageEngine) throws -> Int {
        let view = try engine.readView()
        var expectedN = 0
        var expectedJ = 0
        var problem: String?
        try view.scan(.prefix(batchPrefix), reverse: false, limit: nil) { k, v in
            let key = Array(k)
            if key != self.key(expectedN, expectedJ) {
                problem = "found key \(String(decoding: key, as: UTF8.self)) where \(String(decoding: self.key(expectedN, expectedJ), as: UTF8.self)) was expected: batch \(expectedN) is partial or batches are missing"
                return false
            }
            if Array(v) != value(expectedN, expectedJ) {
                problem = "key \(String(decoding: key, as: UTF8.self)) has a wrong value (\(v.count) bytes)"
                return false
            }
            expectedJ += 1
            if expectedJ == keysPerBatch {
                expectedJ = 0
                expectedN += 1
            }
            return true
        }
        if let problem { throw KillTestInconsistency(message: problem) }
        if expectedJ != 0 { throw KillTestInconsistency(message: "batch \(expectedN) is partial: only \(expectedJ) of \(keysPerBatch) keys") }
        let last = try view.get(lastKey).map { String(decoding: $0, as: UTF8.self) }
        let highest = expectedN - 1
        if highest >= 0 && last != String(highest) {
            throw KillTestInconsistency(message: "kill/last is \(last ?? "absent") but batches 0...\(highest) are present")
        }
        if highest < 0 && last != nil {
            throw KillTestInconsistency(message: "kill/last is \(last!) but no batch is present")
        }
        return highest
    }
}

struct KillTestInconsistency: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
