/// Where and when a toxic acts: Tapedeck's additions to Toxiproxy's toxics, which act on every connection from
/// the moment they are added.
///
/// A toxic with a place acts on one part of a conversation: one session (by its order on the route, or by the
/// recorded session replay serves it from), one exchange in it (the n-th time the client speaks, counting from 1,
/// with what the upstream answers), and from a byte offset into that exchange's bytes in the toxic's stream. One
/// with a `match` acts on each exchange whose client bytes contain those bytes (or match the regular expression).
/// A `count` removes the toxic once it has fired that many times.
///
/// ```yaml
/// - {type: reset_peer, stream: downstream, session: 1, exchange: 2, offset: 100}
/// - {type: reset_peer, stream: downstream, match: "GET", count: 2}
/// ```
public struct ToxicPlacement: Sendable, Hashable {
    /// The session, by its order among the route's connections, counting from 1.
    public var session: Int?
    /// On replay, the recorded session (its id in the tape) the connection is served from.
    public var recordedSession: Int64?
    /// The exchange, counting from 1: the n-th time the client speaks after hearing from the upstream (or first).
    public var exchange: Int?
    /// How many bytes of the exchange (or of the stream, without one) pass before the toxic acts.
    public var offset: Int?
    /// Bytes that, once the client's exchange contains them, make the toxic act on that exchange.
    public var match: [UInt8]?
    /// A regular expression over the client's exchange (its bytes read as Latin-1) that does the same.
    public var matchRegex: String?
    /// How many times the toxic fires before it is removed.
    public var count: Int?

    /// Creates a placement; with nothing set, the toxic acts on every connection, as in Toxiproxy.
    public init(
        session: Int? = nil,
        recordedSession: Int64? = nil,
        exchange: Int? = nil,
        offset: Int? = nil,
        match: [UInt8]? = nil,
        matchRegex: String? = nil,
        count: Int? = nil
    ) {
        self.session = session
        self.recordedSession = recordedSession
        self.exchange = exchange
        self.offset = offset
        self.match = match
        self.matchRegex = matchRegex
        self.count = count
    }

    /// The field names, as the API and fault files spell them.
    public static let fieldNames: Set<String> = [
        "session", "recorded_session", "exchange", "offset", "match", "match_regex", "count",
    ]

    /// Whether the toxic acts on exchanges (one named, or those that match) rather than on whole connections.
    public var isPerExchange: Bool {
        exchange != nil || match != nil || matchRegex != nil
    }

    /// Whether nothing is set.
    public var isEmpty: Bool {
        self == ToxicPlacement()
    }

    /// Checks the values: counts from 1, offsets from 0, a non-empty match, a regular expression that compiles.
    ///
    /// - Throws: ``TapedeckError`` with code `invalidArgument` naming the field.
    public func validate() throws {
        if let session, session < 1 { throw invalid("session", "counts from 1") }
        if let exchange, exchange < 1 { throw invalid("exchange", "counts from 1") }
        if let offset, offset < 0 { throw invalid("offset", "must not be negative") }
        if let count, count < 1 { throw invalid("count", "must be at least 1") }
        if let match, match.isEmpty { throw invalid("match", "must not be empty") }
        if match != nil, matchRegex != nil { throw invalid("match_regex", "cannot go with 'match'; give one") }
        if let matchRegex {
            do {
                _ = try Regex(matchRegex)
            } catch {
                throw TapedeckError(.invalidArgument, "toxic field 'match_regex' is not a regular expression: \(error)")
            }
        }
    }

    private func invalid(_ field: String, _ why: String) -> TapedeckError {
        TapedeckError(.invalidArgument, "toxic field '\(field)' \(why)")
    }
}
