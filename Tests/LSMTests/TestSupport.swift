import Foundation
import XCTest
import EngineAPI
@testable import LSMEngine

/// A temporary directory removed when the test ends.
final class TempDirectory {
    let path: String

    init(_ name: String = "lsm") {
        path = NSTemporaryDirectory() + "/\(name)-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    var store: String { path + "/db" }

    func files(withSuffix suffix: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: store)) ?? [])
            .filter { $0.hasSuffix(suffix) }.sorted().map { store + "/" + $0 }
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

func smallOptions(writeBuffer: Int = 4 << 10, cache: Int = 1 << 20) -> EngineOptions {
    var o = EngineOptions()
    o.writeBufferBytes = writeBuffer
    o.cacheBytes = cache
    return o
}

extension StorageEngine {
    func put(_ k: String, _ v: String, sync: Bool = false) throws {
        var b = WriteBatch()
        b.put(bytes(k), bytes(v))
        try write(b, sync: sync)
    }

    func delete(_ k: String) throws {
        var b = WriteBatch()
        b.delete(bytes(k))
        try write(b, sync: false)
    }

    func string(_ k: String) throws -> String? {
        try get(bytes(k)).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// Overwrites `count` bytes at `offset` of the file with `byte`.
func corrupt(_ path: String, at offset: Int, count: Int = 1, xor: UInt8 = 0xFF) throws {
    let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    defer { try? h.close() }
    try h.seek(toOffset: UInt64(offset))
    let old = try h.read(upToCount: count) ?? Data()
    try h.seek(toOffset: UInt64(offset))
    try h.write(contentsOf: Data(old.map { $0 ^ xor }))
}

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
}

func truncate(_ path: String, to size: Int) throws {
    let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    defer { try? h.close() }
    try h.truncate(atOffset: UInt64(size))
}

func append(_ path: String, _ data: [UInt8]) throws {
    let h = try FileHandle(forUpdating: URL(fileURLWithPath: path))
    defer { try? h.close() }
    try h.seekToEnd()
    try h.write(contentsOf: Data(data))
}
