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
