import NIOCore

/// One client address on a UDP route: the upstream socket opened for it, and what its session records.
///
/// A flow lives on the event loop of the listener that saw its first datagram, and every part of it is touched
/// only there. It ends when it has been idle for the route's timeout, or when the listener closes.
final class DatagramFlow {
    /// Datagrams a flow holds while its upstream socket is being opened, and the bytes they may take; beyond
    /// either, datagrams are dropped and counted, as a full socket buffer would drop them.
    static let pendingLimit = (count: 256, bytes: 4 << 20)

    /// Where the client's datagrams come from, and where the upstream's replies go.
    let client: SocketAddress
    /// The session this flow is on the tape; nil when only relaying.
    let session: SessionRecorder?
    /// The connected upstream socket; nil until it is open.
    var upstream: (any Channel)?
    /// The client's datagrams that arrived before the upstream socket was open.
    var pending: [ByteBuffer] = []
    var pendingBytes = 0
    /// When a datagram last passed either way.
    var lastActivity = NIODeadline.now()
    /// The check that ends the flow once it has been idle long enough.
    var idleCheck: Scheduled<Void>?
    /// The client's datagrams of the current read burst, sent toward the upstream when the burst is over.
    var outbox: [ByteBuffer] = []
    /// Datagrams dropped either way, for the log at the flow's end.
    var dropped = 0
    /// Whether a refused datagram (ICMP port unreachable) was logged for this flow already.
    var refusalLogged = false
    /// Whether the flow is over; an ended flow forwards nothing.
    var ended = false
    /// The route's toxics as this flow meets them; nil on a route served without faults.
    var faults: DatagramFaultStateMachine?
    /// The tasks that send the datagrams toxics held back, one each way, and when they run.
    var faultTimers = DatagramFaultTimers()

    init(client: SocketAddress, session: SessionRecorder?, faults: DatagramFaultStateMachine? = nil) {
        self.client = client
        self.session = session
        self.faults = faults
    }

    /// Holds a datagram until the upstream socket is open; false when the flow already holds its limit.
    func hold(_ datagram: ByteBuffer) -> Bool {
        guard pending.count < Self.pendingLimit.count,
            pendingBytes + datagram.readableBytes <= Self.pendingLimit.bytes
        else { return false }
        pending.append(datagram)
        pendingBytes += datagram.readableBytes
        return true
    }

    /// Counts a dropped datagram, on the tape and for the log.
    func drop() {
        dropped += 1
        session?.countDropped()
    }
}
