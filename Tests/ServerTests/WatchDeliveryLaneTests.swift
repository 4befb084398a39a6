@testable import EtcdAPI
import NIOCore
import NIOEmbedded
import Synchronization
import XCTest

/// The delivery lane's writes-first allowance, on an embedded event loop (virtual time).
final class WatchDeliveryLaneTests: XCTestCase {
    private final class Switches: Sendable {
        let writesFirst = Atomic<Bool>(true)
        let revisions = Atomic<Int64>(0)
        let ran = Atomic<Int>(0)
    }

    private func lane(_ switches: Switches, on loop: EmbeddedEventLoop) -> WatchDeliveryLane {
        WatchDeliveryLane(eventLoop: loop, policy: WatchDeliveryPolicy(
            writesFirst: { switches.writesFirst.load(ordering: .relaxed) },
            committedRevisions: { switches.revisions.load(ordering: .relaxed) }))
    }

    /// Queues `count` works that each send `events` events.
    private func queue(_ count: Int, of events: Int, on lane: WatchDeliveryLane, _ switches: Switches) {
        for _ in 0..<count {
            lane.execute {
                lane.charge(events)
                switches.ran.add(1, ordering: .relaxed)
            }
        }
    }

    func testWhileWritesComeFirstDeliveryWaitsForAllowanceFromNewRevisions() throws {
        let loop = EmbeddedEventLoop()
        let switches = Switches()
        let lane = lane(switches, on: loop)
        let perWork = WatchDeliveryLane.maxCredit / 4
        queue(20, of: perWork, on: lane, switches)
        loop.run()
        // The credit saved up covers four works; then the lane waits.
        XCTAssertEqual(switches.ran.load(ordering: .relaxed), 4)
        loop.advanceTime(by: .milliseconds(50))
        XCTAssertEqual(switches.ran.load(ordering: .relaxed), 4, "no revision committed, no allowance")

        // Each committed revision lets `allowancePerRevision` events through.
        let revisionsPerWork = Int64(perWork / WatchDeliveryLane.allowancePerRevision)
        switches.revisions.add(2 * revisionsPerWork, ordering: .relaxed)
        loop.advanceTime(by: WatchDeliveryLane.recheck)
        XCTAssertEqual(switches.ran.load(ordering: .relaxed), 6)

        // When writes no longer come first, everything left goes at once.
        switches.writesFirst.store(false, ordering: .relaxed)
        loop.advanceTime(by: WatchDeliveryLane.recheck)
        XCTAssertEqual(switches.ran.load(ordering: .relaxed), 20)
        try loop.syncShutdownGracefully()
    }

    func testLightDeliveryNeverWaitsWhileWritesComeFirst() throws {
        let loop = EmbeddedEventLoop()
        let switches = Switches()
        let lane = lane(switches, on: loop)
        // Two watchers' worth of events per revision, over many more revisions than the credit
        // the lane starts with: each send runs as soon as it is queued.
        for i in 1...10_000 {
            switches.revisions.add(1, ordering: .relaxed)
            queue(1, of: 2, on: lane, switches)
            loop.run()
            XCTAssertEqual(switches.ran.load(ordering: .relaxed), i)
            if switches.ran.load(ordering: .relaxed) != i { break }
        }
        try loop.syncShutdownGracefully()
    }
}
