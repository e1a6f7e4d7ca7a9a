import NIOConcurrencyHelpers
import NIOCore

/// Keeps the channels a server has open, so that shutdown can wait for them to finish and close the stragglers.
///
/// One lock-protected dictionary per server: touched twice per connection (open and close), never per byte.
final class ConnectionTracker: Sendable {
    private let channels = NIOLockedValueBox([ObjectIdentifier: any Channel]())

    /// How many channels are open.
    var count: Int {
        channels.withLockedValue { $0.count }
    }

    /// Tracks a channel until it closes.
    func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLockedValue { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in
            self.channels.withLockedValue { $0[id] = nil }
        }
    }

    /// Returns once no tracked channel is open, or once `timeout` has passed; `true` if all closed in time.
    ///
    /// Polls: shutdown is rare and brief, and a poll cannot miss a wake-up the way a hand-rolled waiter list can.
    func waitUntilIdle(timeout: Duration) async -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while count > 0 {
            guard clock.now < deadline else { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// Lets open channels finish for up to `timeout`, then closes the rest with a reset.
    ///
    /// - Returns: How many channels were still open and reset.
    func drain(timeout: Duration) async -> Int {
        if await waitUntilIdle(timeout: timeout) { return 0 }
        let remaining = count
        await closeAll()
        return remaining
    }

    /// Closes every tracked channel at once, with a reset: the session is being cut off, not finished.
    ///
    /// The relay handler does the closing, so that it knows the end was ours and a recording says so.
    func closeAll() async {
        let channels = self.channels.withLockedValue { Array($0.values) }
        for channel in channels {
            channel.eventLoop.execute {
                channel.pipeline.fireUserInboundEventTriggered(RelayHandler.ResetRequest(interrupted: true))
                // In case the relay is not (or no longer) in the pipeline.
                RelayHandler.armReset(channel)
                channel.close(promise: nil)
            }
        }
        for channel in channels {
            try? await channel.closeFuture.get()
        }
    }
}
