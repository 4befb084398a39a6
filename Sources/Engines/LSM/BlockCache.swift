/// A cache of decoded blocks bounded by bytes (EngineOptions.cacheBytes), sharded to keep lock
/// hold times short. Eviction is LRU approximated by CLOCK (second chance): a hit only sets a
/// flag, so hits do not relink list nodes; the eviction scan moves flagged blocks back to the
/// front once before evicting them.
final class BlockCache: @unchecked Sendable {
    private final class Node {
        let key: UInt64
        let fileNumber: UInt64
        let block: Block
        var referenced = false
        var prev: Node?
        var next: Node?
        init(key: UInt64, fileNumber: UInt64, block: Block) {
            self.key = key
            self.fileNumber = fileNumber
            self.block = block
        }
    }

    private final class Shard {
        let lock = Lock()
        var map: [UInt64: Node] = [:]
        var head: Node? // most recent
        var tail: Node?
        var bytes = 0
        var hits = 0
        var misses = 0

        func unlink(_ n: Node) {
            if let p = n.prev { p.next = n.next } else { head = n.next }
            if let nx = n.next { nx.prev = n.prev } else { tail = n.prev }
            n.prev = nil
            n.next = nil
        }

        func pushFront(_ n: Node) {
            n.next = head
            head?.prev = n
            head = n
            if tail == nil { tail = n }
        }
    }

    private let shards: [Shard]
    private let capacityPerShard: Int

    init(capacityBytes: Int) {
        shards = (0..<16).map { _ in Shard() }
        capacityPerShard = max(capacityBytes / 16, 0)
    }

    @inline(__always) private static func key(_ file: UInt64, _ offset: UInt64) -> UInt64 {
        (file << 40) ^ offset
    }

    @inline(__always) private func shard(_ key: UInt64) -> Shard {
        let h = (key &* 0x9E37_79B9_7F4A_7C15) >> 60
        return shards[Int(h)]
    }

    func get(file: UInt64, offset: UInt64) -> Block? {
        let k = BlockCache.key(file, offset)
        let s = shard(k)
        s.lock.lock()
        defer { s.lock.unlock() }
        guard let n = s.map[k], n.fileNumber == file else { s.misses += 1; return nil }
        s.hits += 1
        n.referenced = true
        return n.block
    }

    func insert(file: UInt64, offset: UInt64, block: Block) {
        guard capacityPerShard > 0 else { return }
        let k = BlockCache.key(file, offset)
        let s = shard(k)
        s.lock.lock()
        defer { s.lock.unlock() }
        if let old = s.map[k] {
            s.unlink(old)
            s.bytes -= old.block.charge
        }
        let n = Node(key: k, fileNumber: file, block: block)
        s.map[k] = n
        s.pushFront(n)
        s.bytes += block.charge
        while s.bytes > capacityPerShard, let t = s.tail, t !== n {
            s.unlink(t)
            if t.referenced {
                t.referenced = false
                s.pushFront(t)
                continue
            }
            s.map[t.key] = nil
            s.bytes -= t.block.charge
        }
    }

    var usage: (bytes: Int, hits: Int, misses: Int) {
        var b = 0, h = 0, m = 0
        for s in shards {
            s.lock.lock()
            b += s.bytes; h += s.hits; m += s.misses
            s.lock.unlock()
        }
        return (b, h, m)
    }
}
