import Foundation
import GRDB

extension Tape {
    /// Every record of the tape's content in a fixed order: runs, routes and rules by id, then each session by id
    /// followed by its events in order. Read lazily, so a tape of any size streams in bounded memory.
    ///
    /// - Throws: ``TapedeckError`` when the tape cannot be read; what `body` throws.
    public func forEachContentRecord(_ body: (TapeContentRecord) throws -> Void) throws {
        try reading { db in
            for run in try RunRecord.order(Column("id")).fetchAll(db) { try body(.run(run)) }
            for route in try RouteRecord.order(Column("id")).fetchAll(db) { try body(.route(route)) }
            if try db.tableExists("rules") {
                let rows = try Row.fetchCursor(
                    db,
                    sql:
                        "SELECT id, run_id, route, position, kind, pattern, scope, secret, preset FROM rules ORDER BY id"
                )
                while let row = try rows.next() {
                    try body(
                        .rule(
                            RuleRow(
                                id: row["id"],
                                runID: row["run_id"],
                                route: row["route"],
                                position: row["position"],
                                kind: row["kind"],
                                pattern: row["pattern"],
                                scope: row["scope"],
                                secret: row["secret"],
                                preset: row["preset"]
                            )
                        )
                    )
                }
            }
            // Four reads per session, each a statement compiled once: on a tape of many small sessions, compiling
            // them anew for every session cost more than reading.
            let tlsStatement =
                try db.tableExists(SessionTLSRecord.databaseTableName)
                ? db.cachedStatement(sql: "SELECT * FROM \(SessionTLSRecord.databaseTableName) WHERE session_id = ?")
                : nil
            let redactionStatement =
                try db.tableExists("redactions")
                ? db.cachedStatement(
                    sql: "SELECT seq, start, length, rule_id FROM redactions WHERE session_id = ? ORDER BY seq, start"
                ) : nil
            let offsetStatement = try db.cachedStatement(
                sql: "SELECT offset_ns FROM events WHERE session_id = ? ORDER BY seq"
            )
            let eventStatement = try db.cachedStatement(
                sql: EventRecord.selectSQL + " WHERE session_id = ? ORDER BY seq"
            )
            let sessions = try SessionRecord.order(Column("id")).fetchCursor(db)
            while let session = try sessions.next() {
                guard let id = session.id else { continue }
                let tls = try tlsStatement.flatMap { try SessionTLSRecord.fetchOne($0, arguments: [id]) }
                try body(.session(session, tls: tls))
                let offsets = try Int64.fetchAll(offsetStatement, arguments: [id])
                try body(.times(session: id, offsets: offsets))
                var redactions: [Int64: [RedactionRecord]] = [:]
                if let redactionStatement {
                    let rows = try Row.fetchCursor(redactionStatement, arguments: [id])
                    while let row = try rows.next() {
                        let seq: Int64 = row[0]
                        redactions[seq, default: []].append(
                            RedactionRecord(sessionID: id, seq: seq, start: row[1], length: row[2], ruleID: row[3])
                        )
                    }
                }
                let events = try EventRecord.fetchCursor(eventStatement, arguments: [id])
                while let event = try events.next() {
                    try body(.event(event, redactions: redactions[event.seq] ?? []))
                }
            }
        }
    }
}

/// Writes a new tape from content records, as `tapedeck import` does: the records of ``TapeContentRecord`` with
/// their own ids, in batches of transactions, so a tape of any size is imported in bounded memory.
///
/// The tape is built beside its path and put in place whole by ``finish()``: an import that fails leaves no
/// half-made tape at the path.
public final class TapeImport {
    private let path: String
    private let building: String
    private let database: DatabaseQueue
    private var pending: [TapeContentRecord] = []
    private var pendingBytes = 0
    private var sessionsSeen = Set<Int64>()
    private var lastSession: Int64?
    private var finished = false

    /// How many payload bytes a transaction holds at most before it commits.
    static let batchBytes = 8 << 20

    /// Starts a new tape at `path`; with `overwrite`, one that exists is replaced once the import is complete.
    ///
    /// - Throws: ``TapedeckError``: `tapeUnwritable`, or `invalidArgument` for an existing tape without
    ///   `overwrite`.
    public init(at path: String, overwrite: Bool) throws {
        if TapeFiles.exists(path), !overwrite {
            throw TapedeckError(
                .invalidArgument,
                "tape '\(path)' exists: import writes a new tape (--overwrite to replace it)"
            )
        }
        self.path = path
        building = path + ".importing"
        for suffix in [""] + TapeFiles.sideFileSuffixes {
            try? FileManager.default.removeItem(atPath: building + suffix)
        }
        do {
            let tape = try Tape(recordingAt: building)
            try tape.close()
            database = try DatabaseQueue(path: building, configuration: Tape.configuration())
        } catch let error as TapedeckError {
            throw TapedeckError(.tapeUnwritable, "cannot write tape '\(path)': \(error.message)")
        }
    }

    /// Adds a record. An event must follow its session.
    ///
    /// - Throws: ``TapedeckError`` for an event without its session, or a write that fails.
    public func add(_ record: TapeContentRecord) throws {
        switch record {
        case .session(let session, _):
            guard let id = session.id, sessionsSeen.insert(id).inserted else {
                throw TapedeckError(.invalidArgument, "session \(session.id.map(String.init) ?? "?") appears twice")
            }
            lastSession = id
        case .times:
            return
        case .event(let event, _):
            guard event.sessionID == lastSession else {
                throw TapedeckError(
                    .invalidArgument,
                    "event \(event.seq) of session \(event.sessionID) is not under its session"
                )
            }
            pendingBytes += event.payload?.count ?? 0
        default: break
        }
        pending.append(record)
        if pending.count >= 10_000 || pendingBytes >= Self.batchBytes { try flush() }
    }

    /// Writes the pending records in one transaction.
    private func flush() throws {
        let records = pending
        pending.removeAll(keepingCapacity: true)
        pendingBytes = 0
        do {
            try database.write { db in
                for record in records { try Self.insert(record, db: db) }
            }
        } catch {
            throw TapedeckError(.tapeUnwritable, "cannot write tape '\(path)': \(Tape.reason(error))")
        }
    }

    private static func insert(_ record: TapeContentRecord, db: Database) throws {
        switch record {
        case .run(let run): try run.insert(db)
        case .route(let route): try route.insert(db)
        case .rule(let rule):
            try db.cachedStatement(
                sql: """
                    INSERT INTO rules (id, run_id, route, position, kind, pattern, scope, secret, preset)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """
            ).execute(
                arguments: [
                    rule.id, rule.runID, rule.route, rule.position, rule.kind, rule.pattern, rule.scope, rule.secret,
                    rule.preset,
                ]
            )
        case .session(let session, let tls):
            try session.insert(db)
            try tls?.insert(db)
        case .times:
            break
        case .event(let event, let redactions):
            try insertEvent(event, redactions: redactions, db: db)
        }
    }

    /// Inserts an event and the spans a redaction rule replaced in it: what an import and a re-recording write.
    /// The statements are compiled once per connection, not once per event.
    static func insertEvent(_ event: EventRecord, redactions: [RedactionRecord], db: Database) throws {
        try db.cachedStatement(
            sql: "INSERT INTO events (session_id, seq, offset_ns, direction, kind, payload) VALUES (?, ?, ?, ?, ?, ?)"
        ).execute(
            arguments: [
                event.sessionID, event.seq, event.offsetNanoseconds, event.direction.code, event.kind.code,
                event.payload,
            ]
        )
        for redaction in redactions {
            try db.cachedStatement(
                sql: "INSERT INTO redactions (session_id, seq, start, length, rule_id) VALUES (?, ?, ?, ?, ?)"
            ).execute(
                arguments: [redaction.sessionID, redaction.seq, redaction.start, redaction.length, redaction.ruleID]
            )
        }
    }

    /// Writes what is pending, leaves the tape as one plain file and puts it at its path.
    ///
    /// - Throws: ``TapedeckError`` when a write or the rename fails.
    public func finish() throws {
        guard !finished else { return }
        finished = true
        try flush()
        do {
            try database.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA journal_mode = DELETE")
            }
            try database.close()
        } catch {
            throw TapedeckError(.tapeUnwritable, "cannot write tape '\(path)': \(Tape.reason(error))")
        }
        try TapeFiles.replace(path, with: building)
    }

    /// Removes the tape being built, after an import that failed.
    public func discard() {
        finished = true
        try? database.close()
        for suffix in [""] + TapeFiles.sideFileSuffixes {
            try? FileManager.default.removeItem(atPath: building + suffix)
        }
    }
}
