import NIOCore

/// The scheduled tasks that send a flow's datagrams held back by toxics, one each way, kept in step with the
/// flow's ``DatagramFaultStateMachine/nextDeadline(_:)``. Used on the flow's event loop only.
struct DatagramFaultTimers {
    private var upstream: (task: Scheduled<Void>, at: NIODeadline)?
    private var downstream: (task: Scheduled<Void>, at: NIODeadline)?

    /// Makes `stream`'s task run at `deadline` (none when nil), scheduling it with `schedule` only when the time
    /// changed.
    mutating func arm(
        _ stream: ToxicStream,
        at deadline: NIODeadline?,
        schedule: (NIODeadline) -> Scheduled<Void>
    ) {
        let current = stream == .upstream ? upstream : downstream
        if let current, current.at == deadline { return }
        current?.task.cancel()
        let next = deadline.map { (task: schedule($0), at: $0) }
        if stream == .upstream { upstream = next } else { downstream = next }
    }

    /// `stream`'s task ran: it is no longer scheduled.
    mutating func ran(_ stream: ToxicStream) {
        if stream == .upstream { upstream = nil } else { downstream = nil }
    }

    /// Cancels both tasks, when the flow ends.
    mutating func cancel() {
        upstream?.task.cancel()
        downstream?.task.cancel()
        upstream = nil
        downstream = nil
    }
}
