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
    /// At most this many sessions, in recording order.
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
