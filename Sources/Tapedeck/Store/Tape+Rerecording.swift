import Foundation
import GRDB

/// A recorded session heard again from its upstream, to stand in place of its recording
/// (`--on-expired record`).
public struct SessionRerecording: Sendable {
    /// The session's id in the tape.
    public var session: Int64
    /// When it was heard again, in nanoseconds since the epoch.
    public var startedAt: Int64
    /// How long that took, in nanoseconds.
    public var durationNanoseconds: Int64
    /// How it ended.
    public var outcome: SessionOutcome
    /// The upstream it was heard from.
    public var upstreamAddress: String
    /// The live events, each with the spans a redaction rule replaced in it; nil when the conversation did not
    /// change, so the recorded events stay byte for byte and only the session's time is new.
    public var events: [(event: EventRecord, redactions: [RedactionRecord])]?

    /// Creates a re-recording.
    public init(
        session: Int64,
        startedAt: Int64,
        durationNanoseconds: Int64,
        outcome: SessionOutcome,
        upstreamAddress: String,
        events: [(event: EventRecord, redactions: [RedactionRecord])]?
    ) {
        self.session = session
        self.startedAt = startedAt
        self.durationNanoseconds = durationNanoseconds
        self.outcome = outcome
        self.upstreamAddress = upstreamAddress
        self.events = events
    }
}

extension SessionRerecording {
    /// `session` as heard again: its new time, and when its conversation changed, the new outcome, upstream and
    /// counts of ``events``.
    public func applied(to session: SessionRecord) -> SessionRecord {
        var session = session
        session.startedAt = startedAt
        session.durationNanoseconds = durationNanoseconds
        session.endedAt = startedAt + durationNanoseconds
        if let events {
            let records = events.map(\.event)
            session.outcome = outcome
            session.upstreamAddress = upstreamAddress
            session.eventCount = Int64(events.count)
            session.clientBytes = Tape.dataBytes(records, .clientToUpstream)
            session.upstreamBytes = Tape.dataBytes(records, .upstreamToClient)
        }
        return session
    }
}

extension Tape {
    /// Puts re-recorded sessions in place of their recordings, all in one transaction: a session whose
    /// conversation changed gets its new events (and their redactions), one that did not keeps its events and
    /// gets its new time, so that it counts as freshly recorded.
    ///
    /// - Throws: ``TapedeckError`` when the tape cannot be opened or written; the tape is then as it was.
    public static func rerecord(tapeAt path: String, _ sessions: [SessionRerecording]) throws {
        guard !sessions.isEmpty else { return }
        let tape = try Tape(recordingAt: path)
        defer { try? tape.close() }
        do {
            try tape.database.write { db in
                for rerecording in sessions {
                    guard let session = try SessionRecord.fetchOne(db, key: rerecording.session) else { continue }
                    if let events = rerecording.events {
                        try Self.replaceEvents(of: rerecording.session, with: events, db: db)
                    }
                    try rerecording.applied(to: session).update(db)
                }
            }
            try tape.close()
        } catch let error as TapedeckError {
            throw error
        } catch {
            throw TapedeckError(.tapeUnwritable, "cannot re-record sessions of tape '\(path)': \(Tape.reason(error))")
        }
    }

    private static func replaceEvents(
        of session: Int64,
        with events: [(event: EventRecord, redactions: [RedactionRecord])],
        db: Database
    ) throws {
        if try db.tableExists("redactions") {
            try db.execute(sql: "DELETE FROM redactions WHERE session_id = ?", arguments: [session])
        }
        try db.execute(sql: "DELETE FROM events WHERE session_id = ?", arguments: [session])
        for (event, redactions) in events {
            try TapeImport.insertEvent(event, redactions: redactions, db: db)
        }
    }

    /// How many payload bytes `events` carry in `direction`: a session's byte count.
    static func dataBytes(_ events: [EventRecord], _ direction: Direction) -> Int64 {
        Int64(events.reduce(0) { $0 + ($1.direction == direction && $1.kind == .data ? $1.payload?.count ?? 0 : 0) })
    }
}
