import NIOCore

/// The events a fault stage holds, in order, each with the time it is due; times never go back, so an event is
/// never passed on before one that came before it.
struct FaultSchedule {
    private var events = CircularBuffer<FaultEvent>(initialCapacity: 8)
    private var latest = NIODeadline.uptimeNanoseconds(0)
    /// The bytes held.
    private(set) var bytes = 0

    /// Whether nothing is held.
    var isEmpty: Bool { events.isEmpty }

    /// When the first event held is due.
    var nextDeadline: NIODeadline? { events.first?.at }

    /// Holds events, in order, none due before the one held before it.
    mutating func append(contentsOf incoming: [FaultEvent]) {
        for var event in incoming {
            if event.at < latest { event.at = latest }
            latest = event.at
            bytes += event.byteCount
            events.append(event)
        }
    }

    /// The first event held, if it is due at `now`.
    mutating func popDue(now: NIODeadline) -> FaultEvent? {
        guard let first = events.first, first.at <= now else { return nil }
        bytes -= first.byteCount
        return events.removeFirst()
    }

    /// Every event held, due or not, for an end that cannot wait: a reset, or the channel gone.
    mutating func popAll() -> [FaultEvent] {
        let all = Array(events)
        events.removeAll(keepingCapacity: true)
        bytes = 0
        return all
    }
}
