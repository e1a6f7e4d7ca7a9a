import Logging

/// What one live HTTP/2 connection of a replay did, for the report: the streams it served and those that
/// mismatched, told to the ``ReplayLedger`` when the connection closes, as ``ReplayHandler`` tells it of a
/// byte-level connection.
///
/// Used only on the connection's event loop (its streams' channels share it), so it needs no lock; the stream
/// initializer reaches it through a `NIOLoopBound`.
final class HTTP2ConnectionReplay {
    let route: String
    let book: HTTP2ReplayBook
    let ledger: ReplayLedger
    let logger: Logger
    let client: String
    /// The session of the last recorded stream served, if any.
    private var servedSession: Int64?
    private var mismatches = 0
    private var reported = false

    init(route: String, book: HTTP2ReplayBook, ledger: ReplayLedger, logger: Logger, client: String) {
        self.route = route
        self.book = book
        self.ledger = ledger
        self.logger = logger
        self.client = client
    }

    /// A stream served a recorded stream of `session` whole.
    func served(session: Int64) {
        servedSession = session
    }

    /// A stream left the tape: logged and reported at once, as a byte-level mismatch is.
    func mismatched(_ mismatch: HTTP2StreamMatcher.Mismatch) {
        mismatches += 1
        ledger.mismatched(
            route: route,
            client: client,
            closestSession: mismatch.closestSessionID,
            offset: mismatch.offset,
            expected: mismatch.expected,
            actual: mismatch.actual,
            reason: mismatch.reason,
            logger: logger
        )
    }

    /// The connection closed: a replay when it served a stream and none mismatched, a probe when it served none.
    func closed() {
        guard !reported else { return }
        reported = true
        if let servedSession, mismatches == 0 {
            ledger.replayed(ReplayReport.Replayed(route: route, session: servedSession, client: client))
        } else if servedSession == nil, mismatches == 0 {
            ledger.probed()
        }
    }
}
