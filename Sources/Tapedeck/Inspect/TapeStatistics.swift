import Foundation
import GRDB

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

    /// Reads the totals of `tape`, listing the `largestCount` largest sessions.
    public init(tape: Tape, largestCount: Int = 5) throws {
        (groups, runs, sessions, events, bytes) = try tape.reading { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT route, outcome, count(*) AS sessions, total(client_bytes) AS client_bytes,
                           total(upstream_bytes) AS upstream_bytes, total(duration_ns) AS duration_ns
                    FROM sessions GROUP BY route, outcome ORDER BY route, outcome
                    """
            )
            let groups = rows.map { row in
                Group(
                    route: row["route"],
                    outcome: row["outcome"],
                    sessions: row["sessions"],
                    clientBytes: Int64(row["client_bytes"] as Double),
                    upstreamBytes: Int64(row["upstream_bytes"] as Double),
                    durationNanoseconds: Int64(row["duration_ns"] as Double)
                )
            }
            let runs = try Int.fetchOne(db, sql: "SELECT count(*) FROM runs") ?? 0
            let events = try Int.fetchOne(db, sql: "SELECT total(event_count) FROM sessions").map { $0 } ?? 0
            let bytes = groups.reduce(Int64(0)) { $0 + $1.clientBytes + $1.upstreamBytes }
            return (groups, runs, groups.reduce(0) { $0 + $1.sessions }, events, bytes)
        }
        var largest: [SessionSummary] = []
        let ids = try tape.reading { db in
            try Int64.fetchAll(
                db,
                sql: "SELECT id FROM sessions ORDER BY client_bytes + upstream_bytes DESC, id LIMIT ?",
                arguments: [largestCount]
            )
        }
        for id in ids {
            try tape.forEachSession(matching: SessionQuery(id: id)) { largest.append($0) }
        }
        self.largest = largest
    }
}
