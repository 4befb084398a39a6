import XCTest
@testable import BBolt

/// The writer's dry run by sizes (what a snapshot save's counting pass uses) plans exactly
/// what the writing pass with bytes writes; sizes alone are refused in a writing pass.
final class BBoltWriterPlanTests: XCTestCase {
    func testPlanBySizesEqualsPlanByBytes() throws {
        var rng = SystemRandomNumberGenerator()
        let buckets: [(String, [([UInt8], [UInt8])])] = [
            ("alarm", []),
            ("big", [([1], [UInt8](repeating: 7, count: 70_000)), ([2], [3])]),
            ("key", (0..<30_000).map { i in
                (BBoltReaderTests.key(i), [UInt8](repeating: 1, count: Int.random(in: 0...600, using: &rng)))
            }),
            ("wide", (0..<3_000).map { i in (BBoltReaderTests.key(i) + [UInt8](repeating: 0, count: i % 900), [UInt8]()) }),
        ]
        var bySize = try BBoltWriter(plan: nil, sink: nil)
        XCTAssertTrue(bySize.isPlanning)
        for (name, keys) in buckets {
            try bySize.beginBucket(Array(name.utf8))
            for (k, v) in keys { try bySize.put(keyCount: k.count, valueCount: v.count) }
            try bySize.endBucket()
        }
        let plan = try bySize.finish()
        let bytes = try BBoltReaderTests.database(buckets)   // plans with bytes, writes, checks the size
        XCTAssertEqual(Int(plan.pageCount) * 4096, bytes.count)
        var written = try BBoltWriter(plan: plan) { _ in }
        for (name, keys) in buckets {
            try written.beginBucket(Array(name.utf8))
            for (k, v) in keys { try written.put(k, v) }
            try written.endBucket()
        }
        XCTAssertEqual(try written.finish(), plan)
        // The reader sees every key of the written file.
        let reader = try BBoltReader(BBoltBytes(bytes))
        XCTAssertEqual(try reader.validateAll(), buckets.count + buckets.map(\.1.count).reduce(0, +))
    }

    func testSizesAloneAreRefusedWhenWriting() throws {
        var w = try BBoltWriter(plan: .init(rootPage: 3, pageCount: 4)) { _ in }
        try w.beginBucket([1])
        XCTAssertThrowsError(try w.put(keyCount: 1, valueCount: 1))
    }
}
