import Foundation
import GRDB

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
