import Foundation
import GRDB

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

extension Tape {
    /// Sessions matching `query`, in recording order, read lazily: `body` sees each row as it is read, so the
    /// first page of a tape with 100,000 sessions prints at once.
    public func forEachSession(matching query: SessionQuery, _ body: (SessionSummary) throws -> Void) throws {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let id = query.id {
            conditions.append("s.id = ?")
            _ = arguments.append(contentsOf: [id])
        }
        if let route = query.route {
            conditions.append("s.route = ?")
            _ = arguments.append(contentsOf: [route])
        }
        if let label = query.label {
            conditions.append("r.label = ?")
            _ = arguments.append(contentsOf: [label])
        }
        if let outcome = query.outcome {
            conditions.append("s.outcome = ?")
            _ = arguments.append(contentsOf: [outcome.rawValue])
        }
        if !query.includeProbes {
            conditions.append("s.outcome != ?")
            _ = arguments.append(contentsOf: [SessionOutcome.probe.rawValue])
        }
        if let since = query.sinceNanoseconds ?? query.since.map(Self.nanoseconds(since:)) {
            conditions.append("s.started_at >= ?")
            _ = arguments.append(contentsOf: [since])
        }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let limit = query.limit.map { " LIMIT \($0)" } ?? ""
        let sql = """
            SELECT s.id, s.run_id AS run, s.route, r.label, s.client_address AS client, s.upstream_address AS upstream,
                   s.started_at, s.duration_ns, s.client_bytes, s.upstream_bytes, s.event_count AS events, s.outcome
            FROM sessions s JOIN runs r ON r.id = s.run_id
            \(filter) ORDER BY s.id\(limit)
            """
        try reading { db in
            let cursor = try SessionSummary.fetchCursor(db, sql: sql, arguments: arguments)
            while let row = try cursor.next() { try body(row) }
        }
    }

    /// A date as nanoseconds since 1970, pinned to the range 64 bits hold rather than trapping beyond it.
    static func nanoseconds(since date: Date) -> Int64 {
        let value = date.timeIntervalSince1970 * 1e9
        guard value.isFinite else { return value < 0 ? .min : .max }
        guard value.magnitude < 9.2e18 else { return value < 0 ? .min : .max }
        return Int64(value)
    }

    /// A session's events in order, read lazily so a session of any size streams in bounded memory.
    public func forEachEvent(inSession id: Int64, _ body: (EventRecord) throws -> Void) throws {
        try reading { db in
            guard try SessionRecord.exists(db, key: id) else {
                throw TapedeckError(.invalidArgument, "tape '\(path)' has no session \(id)")
            }
            let cursor = try EventRecord.fetchCursor(
                db,
                sql: EventRecord.selectSQL + " WHERE session_id = ? ORDER BY seq",
                arguments: [id]
            )
            while let event = try cursor.next() { try body(event) }
        }
    }
}
