import Foundation

/// Which sessions of a tape to list: the filters of `tapedeck sessions`.
public struct SessionQuery: Sendable, Hashable {
    /// Only the session with this id.
    public var id: Int64?
    /// Only sessions of this route.
    public var route: String?
    /// Only sessions of runs with this label.
    public var label: String?
    /// Only sessions with this outcome.
    public var outcome: SessionOutcome?
    /// Only sessions that started at or after this time.
    public var since: Date?
    /// Only sessions that started at or after this many nanoseconds since 1970 (see ``TimestampText``); exact,
    /// and used in place of ``since`` when both are set.
    public var sinceNanoseconds: Int64?
    /// Only sessions that started before this many nanoseconds since 1970.
    public var untilNanoseconds: Int64?
    /// Only sessions with these ids.
    public var ids: Set<Int64>?
    /// The order sessions come in: recording order (``SessionSort/id``) unless told otherwise.
    public var sort: SessionSort = .id
    /// Whether the order is reversed: largest first.
    public var descending = false
    /// How many matching sessions to skip, in the query's order, before the first one listed.
    public var offset = 0
    /// At most this many sessions.
    public var limit: Int?
    /// Whether readiness probes (``SessionOutcome/probe``) are listed; `tapedeck sessions` hides them unless
    /// asked with `--all` or `--outcome probe`.
    public var includeProbes = true

    /// Creates a query; with no filters it lists every session.
    public init(
        id: Int64? = nil,
        route: String? = nil,
        label: String? = nil,
        outcome: SessionOutcome? = nil,
        since: Date? = nil,
        limit: Int? = nil
    ) {
        self.id = id
        self.route = route
        self.label = label
        self.outcome = outcome
        self.since = since
        self.limit = limit
    }
}

/// A column sessions can be ordered by: the columns of `tapedeck sessions`.
public enum SessionSort: String, Sendable, Hashable, CaseIterable {
    case id
    case route
    case label
    case client
    case start
    case duration
    case clientBytes = "client_bytes"
    case upstreamBytes = "upstream_bytes"
    case events
    case outcome

    /// The SQL expression over `sessions s JOIN runs r`.
    var column: String {
        switch self {
        case .id: "s.id"
        case .route: "s.route"
        case .label: "r.label"
        case .client: "s.client_address"
        case .start: "s.started_at"
        case .duration: "s.duration_ns"
        case .clientBytes: "s.client_bytes"
        case .upstreamBytes: "s.upstream_bytes"
        case .events: "s.event_count"
        case .outcome: "s.outcome"
        }
    }
}
