import NIOCore

/// The one timer a fault stage keeps, for the first event it holds: armed again only when that event's due time
/// changes, so a stream of delayed chunks costs one scheduled task at a time, not one per chunk.
struct FaultTimer {
    private var scheduled: Scheduled<Void>?
    private var deadline: NIODeadline?

    /// Arms the timer for `deadline` on `loop` (on which the caller runs), or cancels it for `nil`.
    mutating func arm(for deadline: NIODeadline?, on loop: any EventLoop, _ fire: @escaping () -> Void) {
        guard let deadline else {
            cancel()
            return
        }
        if self.deadline == deadline { return }
        scheduled?.cancel()
        self.deadline = deadline
        scheduled = loop.assumeIsolated().scheduleTask(deadline: deadline, fire)
    }

    /// The timer went off: the next ``arm(for:on:_:)`` schedules anew.
    mutating func fired() {
        scheduled = nil
        deadline = nil
    }

    /// Cancels the timer.
    mutating func cancel() {
        scheduled?.cancel()
        fired()
    }
}
