import Foundation

/// Replay's choice of a recorded session for each connection, without sockets: a route's catalog and
/// connections played against it one at a time, through the same `SessionCatalog` and `ReplayMatcher` that a
/// replay server uses.
///
/// Public only to the micro-benchmarks (`@_spi(Benchmarks)`), which measure how the cost of choosing grows with
/// the size of a tape and cannot reach the internal types. A class, so that code outside the module never lays out
/// the internal catalog it holds.
///
/// ```swift
/// let choice = SessionChoice(sessions: [events], repeatable: true)
/// let replayed = choice.playConnection(sending: request)  // the session's id, or nil
/// ```
@_spi(Benchmarks) public final class SessionChoice: Sendable {
    private let catalog: SessionCatalog

    /// Builds the catalog of one route.
    ///
    /// - Parameters:
    ///   - sessions: Each session's events in order, as the tape holds them; the first event's session id names
    ///     the session.
    ///   - repeatable: Whether a session may be played again, as with `tapedeck replay --repeat`.
    public init(sessions: [[EventRecord]], repeatable: Bool) {
        let scripts = sessions.map { events in
            ReplayScript(sessionID: events.first?.sessionID ?? 0, events: events)
        }
        catalog = SessionCatalog(scripts: scripts, repeatable: repeatable)
    }

    /// Plays one connection that sends `request` in one read and then closes, at full speed.
    ///
    /// - Returns: The id of the session that was replayed, or nil if none was.
    public func playConnection(sending request: Data) -> Int64? {
        var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
        _ = matcher.start()
        _ = matcher.receive(request)
        return matcher.connectionClosed()
    }
}
