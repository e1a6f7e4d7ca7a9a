import Foundation
import GRDB

extension Tape {
    /// Every recording run in the tape, oldest first.
    public func runs() throws -> [RunRecord] {
        try reading { db in try RunRecord.order(Column("id")).fetchAll(db) }
    }

    /// Every session in the tape, in the order they were accepted.
    public func sessions() throws -> [SessionRecord] {
        try reading { db in try SessionRecord.order(Column("id")).fetchAll(db) }
    }

    /// Every route of every run, in the order recorded.
    public func routes() throws -> [RouteRecord] {
        try reading { db in try RouteRecord.order(Column("id")).fetchAll(db) }
    }

    /// The names of the routes the tape holds sessions for, in the order first recorded.
    public func sessionRouteNames() throws -> [String] {
        try reading { db in
            try String.fetchAll(db, sql: "SELECT route FROM sessions GROUP BY route ORDER BY min(id)")
        }
    }

    /// One session, or nil if the tape has no session with that id.
    public func session(id: Int64) throws -> SessionRecord? {
        try reading { db in try SessionRecord.fetchOne(db, key: id) }
    }

    /// A session's events in order.
    public func events(inSession id: Int64) throws -> [EventRecord] {
        // A statement compiled once per connection: callers read session after session (drift, diagnosis).
        try reading { db in
            try EventRecord.fetchAll(
                db.cachedStatement(sql: EventRecord.selectSQL + " WHERE session_id = ? ORDER BY seq"),
                arguments: [id]
            )
        }
    }

    /// Runs a read, turning SQLite errors into one-line ``TapedeckError``s that name the tape.
    func reading<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try closed.withLockedValue { closed in
                guard !closed else {
                    throw TapedeckError(.tapeUnreadable, "cannot read tape '\(path)': it was closed")
                }
                return try database.read(body)
            }
        } catch let error as TapedeckError {
            throw error
        } catch {
            throw TapedeckError(.tapeUnreadable, "cannot read tape '\(path)': \(Tape.reason(error))")
        }
    }
}
