import NIOCore

/// Something a fault stage passes along one stream of a connection, at a time: bytes, the sender's FIN, the
/// sender's close, or a cut a toxic makes.
struct FaultEvent {
    /// What happens.
    enum Kind {
        /// Bytes.
        case data(ByteBuffer)
        /// The sender shut down its write half.
        case halfClose
        /// The sender closed the connection (a writer's full close; readers see a FIN first).
        case close
        /// A toxic ends the connection: with RST (`reset_peer`, `down`) or in an orderly way (`limit_data`,
        /// `timeout`).
        case cut(reset: Bool)
    }

    /// When it is due.
    var at: NIODeadline
    /// What happens.
    var kind: Kind
    /// The exchange it belongs to, counting from 1; 0 before the client first spoke.
    var exchange: Int
    /// For data, the offset of its first byte in its exchange's bytes on this stream.
    var exchangeOffset: Int
    /// For data, the offset of its first byte in the whole stream.
    var streamOffset: Int

    /// The number of bytes it carries.
    var byteCount: Int {
        if case .data(let buffer) = kind { return buffer.readableBytes }
        return 0
    }

    /// The same event at another time.
    func at(_ deadline: NIODeadline) -> FaultEvent {
        var event = self
        event.at = deadline
        return event
    }

    /// The bytes from `start` (an index into this event's bytes) up to `end`, as an event of their own.
    func slice(from start: Int, to end: Int) -> FaultEvent {
        guard case .data(let buffer) = kind else { return self }
        var event = self
        event.kind = .data(buffer.getSlice(at: buffer.readerIndex + start, length: end - start)!)
        event.exchangeOffset += start
        event.streamOffset += start
        return event
    }

    /// Whether the event ends the stream (a FIN, a close, or a cut).
    var isEnd: Bool {
        if case .data = kind { return false }
        return true
    }
}

/// Sent through a pipeline just before a toxic cuts its connection, so that replay gives the session back for a
/// retry instead of reporting the cut as a mismatch.
struct FaultCut: Sendable {}

/// Sent out through a replayed connection's pipeline once replay knows which recorded session the connection
/// follows, for toxics pinned to a recorded session (`recorded_session`).
struct ReplayedSessionChosen: Sendable {
    var session: Int64
}
