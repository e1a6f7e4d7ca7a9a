/// What a ``Deck`` did, returned when it stops.
public struct DeckOutcome: Sendable, Hashable {
    /// The mode the deck ran in.
    public var mode: TapedeckMode
    /// The routes and the addresses they were bound to.
    public var routes: [BoundRoute]
    /// The replay report: sessions replayed, mismatches with their diagnostics, unused sessions. `nil` unless
    /// the deck replayed.
    public var replay: ReplayReport?
    /// Sessions written to the tape by this deck: every session when recording, the missing ones when
    /// replaying with record-missing.
    public var recordedSessions: Int = 0
    /// Relayed connections still open when the drain timeout ran out, which were reset.
    public var interruptedConnections: Int = 0

    /// Creates an outcome with nothing replayed or recorded yet.
    public init(mode: TapedeckMode, routes: [BoundRoute]) {
        self.mode = mode
        self.routes = routes
    }
}
