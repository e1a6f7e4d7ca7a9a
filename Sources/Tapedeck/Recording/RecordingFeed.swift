import NIOCore

/// The recorder's store path without sockets: sessions begun on a ``Recorder`` and fed data events from one
/// thread, through the same `SessionRecorder` and tape writer, with the same memory budget, that relays feed from
/// an event loop.
///
/// Public only to the micro-benchmarks (`@_spi(Benchmarks)`), which measure the store alone and cannot reach
/// the internal types. Like the session recorders it holds, it is not `Sendable`: use it from one thread.
///
/// ```swift
/// let feed = RecordingFeed(recorder: recorder, route: route, sessions: 64)
/// for index in 0..<events {
///     while !feed.hasRoom { usleep(50) }
///     feed.recordData(payload, from: .clientToUpstream, session: index)
/// }
/// feed.endSessions()
/// try await recorder.flush()
/// ```
@_spi(Benchmarks) public final class RecordingFeed {
    private let sessions: [SessionRecorder]
    private let budget: RecordingBudget

    /// Begins `sessions` sessions (at least one) on `route`, as if as many clients had connected.
    public init(recorder: Recorder, route: Route, sessions: Int) {
        self.sessions = (0..<max(1, sessions)).map { index in
            recorder.beginSession(route: route, clientAddress: "127.0.0.1:\(10_000 + index)")
        }
        budget = self.sessions[0].budget
    }

    /// Whether the tape writer can take more bytes now; relays stop reading while it cannot.
    public var hasRoom: Bool { budget.hasRoom }

    /// Records one read of `payload` from `direction`'s sender in session `index` (modulo the session count). The
    /// buffer is queued as it is, not copied.
    public func recordData(_ payload: ByteBuffer, from direction: Direction, session index: Int) {
        sessions[index % sessions.count].recordData(payload, from: direction)
    }

    /// Ends every session the way a client that closes first ends it.
    public func endSessions() {
        for session in sessions {
            session.recordEnd(of: .clientToUpstream, reset: false, byPeer: true)
            session.recordEnd(of: .upstreamToClient, reset: false, byPeer: false)
        }
    }
}
