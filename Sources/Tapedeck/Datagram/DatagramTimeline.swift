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

    /// How many datagrams, and bytes, a timeline holds at most: beyond either, a datagram is dropped, as a full
    /// queue drops it (netem's holds 1,000 packets), so that a long delay on a fast flow cannot take all memory.
    static let limit = (count: 10_000, bytes: 16 << 20)

    /// The entries, by time and sequence; a ring, since they mostly go in at the end and out at the front.
    private(set) var entries = CircularBuffer<Entry>()
    private var nextSequence: UInt64 = 0
    /// The bytes the entries hold.
    private var bytes = 0
    /// How many entries are held for a `reorder` toxic, so that asking costs nothing on a long timeline.
    private var heldCount = 0

    /// Whether nothing waits.
    var isEmpty: Bool { entries.isEmpty }

    /// Whether a datagram is held for a `reorder` toxic.
    var holdsOne: Bool { heldCount > 0 }

    /// When the first datagram is due.
    var nextDeadline: NIODeadline? { entries.first?.at }

    /// Whether a datagram of `count` bytes fits under ``limit``.
    func hasRoom(for count: Int) -> Bool {
        entries.count < Self.limit.count && bytes + count <= Self.limit.bytes
    }

    /// Puts a datagram in, after every entry due at the same moment or before.
    mutating func insert(_ datagram: ByteBuffer, at: NIODeadline, held: Bool = false) {
        bytes += datagram.readableBytes
        if held { heldCount += 1 }
        let entry = Entry(datagram: datagram, at: at, sequence: nextSequence, held: held)
        nextSequence &+= 1
        // Datagrams mostly go in at the end: look from there.
        var index = entries.endIndex
        while index != entries.startIndex {
            let before = entries.index(before: index)
            guard entries[before].at > at else { break }
            index = before
        }
        if index == entries.endIndex { entries.append(entry) } else { entries.insert(entry, at: index) }
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
        for datagram in released { bytes -= datagram.readableBytes }
        for index in entries.indices where entries[index].held { entries[index].held = false }
        heldCount = 0
        for datagram in released { insert(datagram, at: at) }
    }

    /// Takes out every datagram due by `now`, in order, and hands each to `emit`.
    mutating func takeDue(now: NIODeadline, _ emit: (ByteBuffer) -> Void) {
        while let first = entries.first, first.at <= now {
            entries.removeFirst()
            bytes -= first.datagram.readableBytes
            if first.held { heldCount -= 1 }
            emit(first.datagram)
        }
    }

    /// Forgets everything waiting, when the flow ends.
    mutating func removeAll() {
        entries.removeAll()
        bytes = 0
        heldCount = 0
    }
}
