import Foundation

/// Totals over a tape: `tapedeck stats`.
public struct TapeStatistics: Sendable, Codable, Hashable {
    /// Totals for one route and outcome.
    public struct Group: Sendable, Codable, Hashable {
        /// The route.
        public var route: String
        /// The sessions' outcome.
        public var outcome: String
        /// Sessions with this route and outcome.
        public var sessions: Int
        /// Bytes the clients sent.
        public var clientBytes: Int64
        /// Bytes the upstreams sent.
        public var upstreamBytes: Int64
        /// The sessions' durations added up, in nanoseconds.
        public var durationNanoseconds: Int64

        enum CodingKeys: String, CodingKey {
            case route, outcome, sessions
            case clientBytes = "client_bytes"
            case upstreamBytes = "upstream_bytes"
            case durationNanoseconds = "duration_ns"
        }
    }

    /// Per route and outcome, by route then outcome.
    public var groups: [Group]
    /// The largest sessions by bytes both ways, largest first.
    public var largest: [SessionSummary]
    /// Runs in the tape.
    public var runs: Int
    /// Sessions in the tape.
    public var sessions: Int
    /// Events in the tape.
    public var events: Int
    /// Payload bytes both ways.
    public var bytes: Int64
}
