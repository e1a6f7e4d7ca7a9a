import NIOCore

/// The datagrams of one flow and direction that toxics hold back (`latency`, `reorder`), in the order they are
/// to be sent: by time, then by the order they were put in.
///
/// A single ordered list rather than one scheduled task per datagram: NIO does not promise to run tasks due at the
/// same moment in the order they were scheduled, and datagrams delayed alike must keep their order.
struct DatagramTimeline {
    /// A datagram waiting for its time.
    struct Entry {
        var datagram: ByteBuffer
        /// When it is sent.
        var at: NIODeadline
        /// Breaks ties between entries due at the same moment: the one put in first goes first.
        var sequence: UInt64
        /// Whether a `reorder` toxic holds it until the next datagram has gone (or until `at`).
        var held: Bool
    }

    /// The entries, by time and sequence.
    private(set) var entries: [Entry] = []
    private var nextSequence: UInt64 = 0

    /// Whether nothing waits.
    var isEmpty: Bool { entries.isEmpty }

    /// Whether a datagram is held for a `reorder` toxic.
    var holdsOne: Bool { entries.contains { $0.held } }

    /// When the first datagram is due.
    var nextDeadline: NIODeadline? { entries.first?.at }

    /// Puts a datagram in, after every entry due at the same moment or before.
    mutating func insert(_ datagram: ByteBuffer, at: NIODeadline, held: Bool = false) {
        let entry = Entry(datagram: datagram, at: at, sequence: nextSequence, held: held)
        nextSequence &+= 1
        // Datagrams mostly go in at the end: look from there.
        var index = entries.endIndex
        while index > entries.startIndex, entries[index - 1].at > at { index -= 1 }
        entries.insert(entry, at: index)
    }

    /// The next datagram has been put in, due at `at`: every held datagram due later goes right after it, which
    /// is the overtaking a `reorder` toxic asks for. One due earlier keeps its time: its hold ran out first.
    mutating func releaseHeld(after at: NIODeadline) {
        guard holdsOne else { return }
        var released: [ByteBuffer] = []
        entries.removeAll { entry in
            guard entry.held else { return false }
            if entry.at >= at {
                released.append(entry.datagram)
                return true
            }
            return false
        }
        for index in entries.indices { entries[index].held = false }
        for datagram in released { insert(datagram, at: at) }
    }

    /// Takes out every datagram due by `now`, in order, and hands each to `emit`.
    mutating func takeDue(now: NIODeadline, _ emit: (ByteBuffer) -> Void) {
        var due = 0
        while due < entries.count, entries[due].at <= now { due += 1 }
        guard due > 0 else { return }
        for index in 0..<due { emit(entries[index].datagram) }
        entries.removeFirst(due)
    }

    /// Forgets everything waiting, when the flow ends.
    mutating func removeAll() {
        entries.removeAll()
    }
}
