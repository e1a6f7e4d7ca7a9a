import Foundation
import GRDB

/// A redacted stretch of one recorded event, as the tape keeps it.
public struct RedactionRecord: Sendable, Hashable {
    /// The event's session and sequence number.
    public var sessionID: Int64
    public var seq: Int64
    /// Where the placeholder starts in the event's payload, and how many bytes it covers.
    public var start: Int
    public var length: Int
    /// The rule that made it, as stored in the tape (see ``Tape/storedRules()``).
    public var ruleID: Int64
}

/// A rule as stored in a tape: the run and route it was recorded with.
public struct StoredRule: Sendable, Hashable {
    public var id: Int64
    public var runID: Int64
    public var route: String
    public var rule: Rule
}

extension Tape {
    /// Stores the rules each route records with, in the run being begun; returns their ids in each route's order.
    static func insertRules(_ routes: [Route], runID: Int64, db: Database) throws -> [String: [Int64]] {
        var ids: [String: [Int64]] = [:]
        for route in routes {
            var routeIDs: [Int64] = []
            for (position, rule) in route.rules.enumerated() {
                try db.execute(
                    sql: """
                        INSERT INTO rules(run_id, route, position, kind, pattern, scope, secret, preset)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        runID, route.name, position, rule.kind.rawValue, rule.pattern, rule.scope.rawValue, rule.secret,
                        rule.preset,
                    ]
                )
                routeIDs.append(db.lastInsertedRowID)
            }
            ids[route.name] = routeIDs
        }
        return ids
    }

    /// Every rule stored in the tape, in recording order. A tape of format 1 has none.
    ///
    /// - Throws: ``TapedeckError`` with code `tapeUnreadable`, also for a stored rule that is not valid.
    public func storedRules() throws -> [StoredRule] {
        let rows = try reading { db -> [Row] in
            guard try db.tableExists("rules") else { return [] }
            return try Row.fetchAll(
                db,
                sql:
                    "SELECT id, run_id, route, kind, pattern, scope, secret, preset FROM rules ORDER BY run_id, position"
            )
        }
        return try rows.map { row in
            let kindText: String = row["kind"]
            let scopeText: String = row["scope"]
            guard let kind = Rule.Kind(rawValue: kindText), let scope = Rule.Scope(rawValue: scopeText) else {
                throw TapedeckError(
                    .tapeUnreadable,
                    "cannot read tape '\(path)': a stored rule has kind '\(kindText)' "
                        + "and scope '\(scopeText)'"
                )
            }
            let pattern: String = row["pattern"]
            do {
                let rule = try Rule(kind, pattern: pattern, scope: scope, secret: row["secret"], preset: row["preset"])
                return StoredRule(id: row["id"], runID: row["run_id"], route: row["route"], rule: rule)
            } catch let error as TapedeckError {
                throw TapedeckError(.tapeUnreadable, "cannot read tape '\(path)': stored rule: \(error.message)")
            }
        }
    }

    /// The rules of one route as replay applies them: every run's, each once, in recording order.
    public func rules(ofRoute route: String) throws -> [Rule] {
        try storedRules().filter { $0.route == route }.map(\.rule).uniqued()
    }

    /// The redacted stretches of the given sessions' events (all sessions when nil), by session, in event order.
    ///
    /// - Throws: ``TapedeckError`` with code `tapeUnreadable`.
    public func redactions(ofSessions sessions: Set<Int64>? = nil) throws -> [Int64: [RedactionRecord]] {
        try reading { db in
            guard try db.tableExists("redactions") else { return [:] }
            var result: [Int64: [RedactionRecord]] = [:]
            // A few sessions are looked up by key rather than read past every redaction of a large tape.
            let filter = sessions == nil ? "" : " WHERE session_id IN (SELECT value FROM json_each(?))"
            let arguments: StatementArguments =
                sessions.map { ["[" + $0.sorted().map(String.init).joined(separator: ",") + "]"] } ?? []
            let cursor = try Row.fetchCursor(
                db,
                sql: "SELECT session_id, seq, start, length, rule_id FROM redactions\(filter) ORDER BY session_id, seq, start",
                arguments: arguments
            )
            while let row = try cursor.next() {
                let session: Int64 = row[0]
                result[session, default: []].append(
                    RedactionRecord(sessionID: session, seq: row[1], start: row[2], length: row[3], ruleID: row[4])
                )
            }
            return result
        }
    }
}
