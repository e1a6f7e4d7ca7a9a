import Foundation
import GRDB

extension Tape {
    /// Up to `limit` events of session `id` after event `after`, in order: one page of a long session.
    ///
    /// - Throws: ``TapedeckError`` if the tape has no such session or cannot be read.
    public func events(inSession id: Int64, after: Int64, limit: Int) throws -> [EventRecord] {
        try reading { db in
            guard try SessionRecord.exists(db, key: id) else {
                throw TapedeckError(.invalidArgument, "tape '\(path)' has no session \(id)")
            }
            return try EventRecord.fetchAll(
                db,
                sql: EventRecord.selectSQL + " WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                arguments: [id, after, limit]
            )
        }
    }

    /// One event of session `id`, or nil when it has none numbered `seq`.
    public func event(inSession id: Int64, seq: Int64) throws -> EventRecord? {
        try reading { db in
            try EventRecord.fetchOne(
                db,
                sql: EventRecord.selectSQL + " WHERE session_id = ? AND seq = ?",
                arguments: [id, seq]
            )
        }
    }

    /// How many payload bytes each direction of session `id` carried in its data events up to and including
    /// event `seq`: where the next event's payload starts in its direction's byte stream.
    public func streamOffsets(inSession id: Int64, through seq: Int64) throws -> [Direction: Int64] {
        try reading { db in
            let rows = try Row.fetchAll(
                db,
                sql: """
                    SELECT direction, COALESCE(SUM(length(payload)), 0) AS bytes FROM events
                    WHERE session_id = ? AND seq <= ? AND kind = ? GROUP BY direction
                    """,
                arguments: [id, seq, EventKind.data.code]
            )
            var offsets: [Direction: Int64] = [.clientToUpstream: 0, .upstreamToClient: 0]
            for row in rows {
                guard let direction = Direction(code: row["direction"]) else { continue }
                offsets[direction] = row["bytes"]
            }
            return offsets
        }
    }
}

extension Tape {
    /// What the tape holds at a glance, for an inspector's header and for noticing that sessions arrived: its
    /// format version, how many sessions and the last one's id, its runs' labels and its sessions' outcomes.
    public struct Overview: Sendable, Hashable {
        /// The tape's format version.
        public var format: Int
        /// How many sessions it holds, probes included.
        public var sessions: Int
        /// The highest session id, or nil for a tape without sessions.
        public var lastSession: Int64?
        /// The runs' labels, each once, sorted.
        public var labels: [String]
        /// The sessions' outcomes, each once, sorted.
        public var outcomes: [String]
    }

    /// How many sessions the tape holds, probes included, and the highest id: one cheap query, which changes
    /// whenever a session is added.
    public func sessionCount() throws -> (count: Int, last: Int64?) {
        try reading { db in
            let row = try Row.fetchOne(db, sql: "SELECT COUNT(*), MAX(id) FROM sessions")
            return (row?[0] ?? 0, row?[1])
        }
    }

    /// The tape's ``Overview``.
    public func overview() throws -> Overview {
        let (count, last) = try sessionCount()
        return try reading { db in
            Overview(
                format: try Int.fetchOne(
                    db,
                    sql: "SELECT CAST(value AS INTEGER) FROM tape_meta WHERE key = 'format_version'"
                ) ?? 0,
                sessions: count,
                lastSession: last,
                labels: try String.fetchAll(
                    db,
                    sql: "SELECT DISTINCT label FROM runs WHERE label IS NOT NULL ORDER BY label"
                ),
                outcomes: try String.fetchAll(db, sql: "SELECT DISTINCT outcome FROM sessions ORDER BY outcome")
            )
        }
    }
}
