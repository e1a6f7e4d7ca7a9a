/// A route's recorded sessions as replay plays them: the immutable ``SessionIndex`` and the ``SessionLedger`` of
/// what connections did with it. Every connection of the route shares one catalog.
struct SessionCatalog: Sendable {
    /// The sessions, sorted and indexed; never changes while replaying.
    let index: SessionIndex
    /// Claims, replays and played exchanges; changes as connections come and go.
    let ledger: SessionLedger

    /// - Parameters:
    ///   - scripts: The route's sessions, in recording order.
    ///   - repeatable: Whether a session may be replayed more than once.
    ///   - payloads: Where the scripts' `.stored` upstream bytes are read; nil when every byte is held.
    init(scripts: [ReplayScript], repeatable: Bool, payloads: UpstreamPayloadSource? = nil) {
        index = SessionIndex(scripts: scripts, payloads: payloads)
        ledger = SessionLedger(index: index, repeatable: repeatable)
    }

    /// Sessions never replayed, by tape id (see ``SessionLedger/unusedSessionIDs``).
    var unusedSessionIDs: [Int64] { ledger.unusedSessionIDs }

    /// Sessions played in part (see ``SessionLedger/incompleteSessions``).
    var incompleteSessions: [(session: Int64, offset: Int)] { ledger.incompleteSessions }

    /// A session's handshake group (see ``SessionIndex/handshakeGroup(of:)``).
    func handshakeGroup(of index: Int) -> Int? { self.index.handshakeGroup(of: index) }
}
