import NIOCore
import NIOEmbedded
import Testing

@testable import Tapedeck

/// Waiting for a server's connections to end: woken by the last close, bounded by the timeout.
struct ConnectionTrackerTests {
    @Test func waitingEndsWhenTheLastChannelCloses() async throws {
        // Async testing channels: their loop may be used from any thread, as the waiting task does.
        let tracker = ConnectionTracker()
        let loop = NIOAsyncTestingEventLoop()
        let first = NIOAsyncTestingChannel(loop: loop)
        let second = NIOAsyncTestingChannel(loop: loop)
        tracker.track(first)
        tracker.track(second)
        let waiting = Task { await tracker.waitUntilIdle(timeout: .seconds(3600)) }
        try await first.close()
        #expect(tracker.count == 1)
        try await second.close()
        // Woken by the close, not by the hour's timeout; the minute allowed is for a suite that keeps two shared
        // cores busy, where a task may wait long for its turn.
        #expect(try await withTimeout(.seconds(60)) { await waiting.value })
        #expect(tracker.count == 0)
    }

    @Test func waitingGivesUpAtTheTimeoutAndAnIdleTrackerDoesNotWait() async throws {
        let tracker = ConnectionTracker()
        #expect(await tracker.waitUntilIdle(timeout: .seconds(60)))
        let channel = NIOAsyncTestingChannel()
        tracker.track(channel)
        #expect(await tracker.waitUntilIdle(timeout: .milliseconds(20)) == false)
        #expect(tracker.count == 1)
        try await channel.close()
        #expect(await tracker.waitUntilIdle(timeout: .seconds(60)))
    }
}
