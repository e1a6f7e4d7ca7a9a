import Foundation
import GRDB

extension Tape {
    /// Sessions matching `query`, in its order (recording order unless it says otherwise), read lazily: `body`
    /// sees each row as it is read, so the first page of a tape with 100,000 sessions prints at once.
    public func forEachSession(matching query: SessionQuery, _ body: (SessionSummary) throws -> Void) throws {
        let (filter, arguments) = Self.whereClause(of: query)
        let direction = query.descending ? "DESC" : "ASC"
        // The id breaks ties, so that paging through equal keys neither repeats nor skips a session.
        let order =
            query.sort == .id ? "s.id \(direction)" : "\(query.sort.column) \(direction), s.id \(direction)"
        var limit = query.limit.map { " LIMIT \($0)" } ?? ""
        if query.offset > 0 { limit = (limit.isEmpty ? " LIMIT -1" : limit) + " OFFSET \(query.offset)" }
        let sql = """
            SELECT s.id, s.run_id AS run, s.route, r.label, s.client_address AS client, s.upstream_address AS upstream,
                   s.started_at, s.duration_ns, s.client_bytes, s.upstream_bytes, s.event_count AS events, s.outcome
            FROM sessions s JOIN runs r ON r.id = s.run_id
            \(filter) ORDER BY \(order)\(limit)
            """
        try reading { db in
            let cursor = try SessionSummary.fetchCursor(db, sql: sql, arguments: arguments)
            while let row = try cursor.next() { try body(row) }
        }
    }

    /// How many sessions match `query`'s filters; its order, offset and limit do not count.
    public func countSessions(matching query: SessionQuery) throws -> Int {
        let (filter, arguments) = Self.whereClause(of: query)
        let sql = "SELECT COUNT(*) FROM sessions s JOIN runs r ON r.id = s.run_id \(filter)"
        return try reading { db in try Int.fetchOne(db, sql: sql, arguments: arguments) ?? 0 }
    }

    /// The `WHERE` clause of `query`'s filters over `sessions s JOIN runs r`, with its arguments.
    private static func whereClause(of query: SessionQuery) -> (String, StatementArguments) {
        var conditions: [String] = []
        var arguments: StatementArguments = []
        if let id = query.id {
            conditions.append("s.id = ?")
            _ = arguments.append(contentsOf: [id])
        }
        if let ids = query.ids {
            // One argument however many ids: SQLite caps the number of arguments, not the size of one.
            conditions.append("s.id IN (SELECT value FROM json_each(?))")
            _ = arguments.append(contentsOf: ["[" + ids.sorted().map(String.init).joined(separator: ",") + "]"])
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
        if let until = query.untilNanoseconds {
            conditions.append("s.started_at < ?")
            _ = arguments.append(contentsOf: [until])
        }
        return (conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND "), arguments)
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

    /// Every event of the tape, or of one session, in session and event order, read lazily.
    public func forEachEventInOrder(session: Int64? = nil, _ body: (EventRecord) throws -> Void) throws {
        let filter = session == nil ? "" : " WHERE session_id = ?"
        let arguments: StatementArguments = session.map { [$0] } ?? []
        try reading { db in
            let cursor = try EventRecord.fetchCursor(
                db,
                sql: EventRecord.selectSQL + filter + " ORDER BY session_id, seq",
                arguments: arguments
            )
            while let event = try cursor.next() { try body(event) }
        }
    }
}
