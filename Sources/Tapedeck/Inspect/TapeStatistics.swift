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
            let groups = try rows.map { row in
                Group(
                    route: try row.decode(String.self, forColumn: "route"),
                    outcome: try row.decode(String.self, forColumn: "outcome"),
                    sessions: try row.decode(Int.self, forColumn: "sessions"),
                    clientBytes: try Self.whole(row.decode(Double.self, forColumn: "client_bytes"), "client bytes"),
                    upstreamBytes: try Self.whole(
                        row.decode(Double.self, forColumn: "upstream_bytes"),
                        "upstream bytes"
                    ),
                    durationNanoseconds: try Self.whole(row.decode(Double.self, forColumn: "duration_ns"), "durations")
                )
            }
            let runs = try Int.fetchOne(db, sql: "SELECT count(*) FROM runs") ?? 0
            let events = Int(
                try Self.whole(Double.fetchOne(db, sql: "SELECT total(event_count) FROM sessions") ?? 0, "events")
            )
            var bytes: Int64 = 0
            for group in groups {
                for part in [group.clientBytes, group.upstreamBytes] {
                    let (sum, overflow) = bytes.addingReportingOverflow(part)
                    guard !overflow else { throw TapeContentError("the tape's byte total is beyond 64 bits") }
                    bytes = sum
                }
            }
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

    /// A total SQLite summed as a float, as a whole number; a tape whose totals do not fit 64 bits was not
    /// written by Tapedeck, and converting would trap.
    private static func whole(_ total: Double, _ what: String) throws -> Int64 {
        guard total.isFinite, total.magnitude < 9.2e18 else {
            throw TapeContentError("the tape's total of \(what) is beyond 64 bits")
        }
        return Int64(total)
    }
}
