import Foundation
import GRDB
import NIOCore

/// What `tapedeck redact` changed in a tape.
public struct TapeRedaction: Sendable {
    /// One redacted stretch of one event.
    public struct Change: Sendable, Hashable {
        public var sessionID: Int64
        public var seq: Int64
        public var start: Int
        public var length: Int
        /// The rule, as written on the command line.
        public var rule: String
    }

    /// Every stretch redacted, in session and event order.
    public var changes: [Change] = []

    /// How many sessions had something redacted.
    public var sessionCount: Int { Set(changes.map(\.sessionID)).count }
}

extension Tape {
    /// Redacts a recorded tape after the fact: a copy is written beside it (`<tape>.redacting`) with every span of
    /// the redact rules replaced by placeholders, exactly as the recorder would have written them, the rules are
    /// stored with a run of mode `redact` so that replay applies them, and the copy replaces the tape only once
    /// it is complete. Volatile rules among `rules` are stored too.
    ///
    /// - Parameters:
    ///   - path: The tape.
    ///   - rules: The rules to apply to every route's sessions.
    /// - Returns: What was redacted.
    /// - Throws: ``TapedeckError`` if the tape cannot be read or the copy cannot be written; the tape is then as
    ///   it was.
    public static func redact(tapeAt path: String, rules: [Rule]) throws -> TapeRedaction {
        let source = try Tape(readingAt: path)
        let temporary = path + ".redacting"
        for suffix in [""] + TapeFiles.sideFileSuffixes {
            try? FileManager.default.removeItem(atPath: temporary + suffix)
        }
        var redaction = TapeRedaction()
        do {
            // Made 0600 before SQLite writes a byte of the tape's contents into it.
            guard
                FileManager.default.createFile(atPath: temporary, contents: nil, attributes: [.posixPermissions: 0o600])
            else {
                throw TapedeckError(.tapeUnwritable, "cannot write '\(temporary)': \(Tape.errnoReason())")
            }
            let copy = try DatabaseQueue(path: temporary)
            try source.database.backup(to: copy)
            try source.close()
            try TapeSchema.migrator.migrate(copy)
            let client = try CompiledRules(rules, direction: .clientToUpstream, kinds: [.redact])
            let upstream = try CompiledRules(rules, direction: .upstreamToClient, kinds: [.redact])
            try copy.write { db in
                let run = RunRecord(
                    id: nil,
                    startedAt: WallClock.nowNanoseconds(),
                    endedAt: WallClock.nowNanoseconds(),
                    toolVersion: tapedeckVersion,
                    mode: "redact",
                    label: nil
                )
                try run.insert(db)
                let runID = db.lastInsertedRowID
                let routeNames = try String.fetchAll(db, sql: "SELECT DISTINCT route FROM sessions ORDER BY route")
                let routes = routeNames.map { Route(name: $0, rules: rules) }
                let ruleIDs = try Tape.insertRules(routes, runID: runID, db: db)
                let sessions = try Row.fetchAll(db, sql: "SELECT id, route FROM sessions ORDER BY id")
                for session in sessions {
                    let id: Int64 = session["id"]
                    let route: String = session["route"]
                    redaction.changes += try redactSession(
                        id,
                        rules: (client, upstream),
                        ruleIDs: ruleIDs[route] ?? [],
                        descriptions: rules.map { "\($0)" },
                        db: db
                    )
                }
            }
            try copy.writeWithoutTransaction { db in _ = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            try copy.close()
            try TapeFiles.replace(path, with: temporary)
        } catch {
            for suffix in [""] + TapeFiles.sideFileSuffixes {
                try? FileManager.default.removeItem(atPath: temporary + suffix)
            }
            if let error = error as? TapedeckError { throw error }
            throw TapedeckError(.tapeUnwritable, "cannot redact tape '\(path)': \(Tape.reason(error))")
        }
        return redaction
    }

    /// Redacts one session's events in place, direction by direction, as the recorder would have.
    private static func redactSession(
        _ id: Int64,
        rules: (client: CompiledRules, upstream: CompiledRules),
        ruleIDs: [Int64],
        descriptions: [String],
        db: Database
    ) throws -> [TapeRedaction.Change] {
        var changes: [TapeRedaction.Change] = []
        let events = try EventRecord.fetchAll(
            db,
            sql: EventRecord.selectSQL + " WHERE session_id = ? ORDER BY seq",
            arguments: [id]
        )
        let redacted = RecordingRedactor.redact(events, client: rules.client, upstream: rules.upstream)
        for event in redacted.values.sorted(by: { $0.seq < $1.seq }) where !event.redactions.isEmpty {
            try db.execute(
                sql: "UPDATE events SET payload = ? WHERE session_id = ? AND seq = ?",
                arguments: [Data(event.payload.readableBytesView), id, event.seq]
            )
            for part in event.redactions where ruleIDs.indices.contains(part.rule) {
                try db.execute(
                    sql:
                        "INSERT OR IGNORE INTO redactions(session_id, seq, start, length, rule_id) VALUES (?, ?, ?, ?, ?)",
                    arguments: [id, event.seq, part.start, part.length, ruleIDs[part.rule]]
                )
                changes.append(
                    .init(
                        sessionID: id,
                        seq: event.seq,
                        start: part.start,
                        length: part.length,
                        rule: descriptions[part.rule]
                    )
                )
            }
        }
        return changes
    }
}
