import Foundation
import GRDB

/// One row of a session listing: the session with its run's label.
public struct SessionSummary: Sendable, Hashable, Codable, FetchableRecord {
    /// The session's id.
    public var id: Int64
    /// The run that recorded it.
    public var run: Int64
    /// The route's name.
    public var route: String
    /// The run's label, if any.
    public var label: String?
    /// The client's address.
    public var client: String
    /// The upstream's address.
    public var upstream: String
    /// Wall-clock start, nanoseconds since 1970.
    public var startedAt: Int64
    /// Monotonic duration in nanoseconds, when the session ended on tape.
    public var durationNanoseconds: Int64?
    /// Bytes the client sent.
    public var clientBytes: Int64
    /// Bytes the upstream sent.
    public var upstreamBytes: Int64
    /// Events recorded.
    public var events: Int64
    /// How the session ended.
    public var outcome: SessionOutcome

    enum CodingKeys: String, CodingKey {
        case id, run, route, label, client, upstream, events, outcome
        case startedAt = "started_at"
        case durationNanoseconds = "duration_ns"
        case clientBytes = "client_bytes"
        case upstreamBytes = "upstream_bytes"
    }
}
