import NIOConcurrencyHelpers
import NIOCore

/// Keeps the channels a server has open, so that shutdown can wait for them to finish and close the stragglers.
///
/// One lock-protected dictionary per server: touched twice per connection (open and close), never per byte.
final class ConnectionTracker: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        /// Tasks waiting for the last channel to close, by waiter id.
        var idleWaiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        /// Waiters cancelled before they registered: they must not wait at all.
        var cancelledWaiters: Set<UInt64> = []
        var nextWaiter: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    /// How many channels are open.
    var count: Int {
        state.withLockedValue { $0.channels.count }
    }

    /// Tracks a channel until it closes.
    func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        state.withLockedValue { $0.channels[id] = channel }
        channel.closeFuture.whenComplete { _ in
            let waiters = self.state.withLockedValue { state -> [CheckedContinuation<Bool, Never>] in
                state.channels[id] = nil
                guard state.channels.isEmpty else { return [] }
                defer { state.idleWaiters = [:] }
                return Array(state.idleWaiters.values)
            }
            // Resumed outside the lock: a resumed task may come straight back to this tracker.
            for waiter in waiters { waiter.resume(returning: true) }
        }
    }

    /// Returns once no tracked channel is open, or once `timeout` has passed or the task was cancelled; `true` if
    /// all closed in time.
    ///
    /// Woken by the close of the last channel, not by polling: a drain ends the moment the last session does.
    func waitUntilIdle(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await self.idle()
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first || count == 0
        }
    }

    /// Returns `true` when no tracked channel is open, or `false` when the calling task is cancelled first.
    private func idle() async -> Bool {
        let id = state.withLockedValue { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let resumeNow = state.withLockedValue { state -> Bool? in
                    let cancelled = state.cancelledWaiters.remove(id) != nil
                    if state.channels.isEmpty { return true }
                    if cancelled { return false }
                    state.idleWaiters[id] = continuation
                    return nil
                }
                if let resumeNow { continuation.resume(returning: resumeNow) }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> CheckedContinuation<Bool, Never>? in
                if let waiter = state.idleWaiters.removeValue(forKey: id) { return waiter }
                // Not registered yet (or already resumed): make a late registration return at once.
                state.cancelledWaiters.insert(id)
                return nil
            }
            // A drain cut short (a service cancelled while draining) resets what is left rather than wait.
            waiter?.resume(returning: false)
        }
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
        let channels = state.withLockedValue { Array($0.channels.values) }
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
