import Foundation
import GRDB

extension TapeStatistics {
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
            try tape.forEachSession(matching: SessionQuery(id: id)) { session in
                // Listed with its bytes both ways added up. Counts no recording writes can fit one by one, and
                // even in the route's total, yet not added up: refuse them here rather than trap there.
                guard !session.clientBytes.addingReportingOverflow(session.upstreamBytes).overflow else {
                    throw TapeContentError("session \(session.id) has more bytes both ways than 64 bits hold")
                }
                largest.append(session)
            }
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
