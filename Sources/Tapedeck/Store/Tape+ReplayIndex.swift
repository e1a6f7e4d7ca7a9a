import Foundation
import GRDB

/// An event as replay indexes it: what the client sent in full, and what the upstream sent either in full or,
/// past a memory budget, by size alone, to be read from the tape when it is due (``Tape/readUpstreamPayloads(_:into:)``).
struct IndexedEvent: Sendable, Equatable {
    var sessionID: Int64
    var seq: Int64
    var offsetNanoseconds: Int64
    var direction: Direction
    var kind: EventKind
    /// The payload, unless it was left in the tape.
    var payload: Data?
    /// The payload's size in bytes, whether it was read or left in the tape.
    var size: Int

    /// Whether the payload is in the tape only.
    var isStored: Bool { payload == nil && size > 0 }
}

/// Where one recorded upstream payload is in the tape, and which of its bytes are wanted.
struct StoredPayload: Sendable, Hashable {
    var sessionID: Int64
    var seq: Int64
    /// The wanted bytes of the payload: all of it, or what is left after some were already sent.
    var bytes: Range<Int>
}

extension Tape {
    /// Every event of the tape in session and event order, for replay: client payloads in full, upstream
    /// payloads in full while they fit in `inlineBudget` bytes in all (and each in `inlineLimit`), the rest by
    /// size only, so that indexing a tape holding a 1 GiB download reads kilobytes, not the download.
    ///
    /// Two cursors over the same order: one reads every event without upstream payloads, the other the upstream
    /// payloads small enough to keep, until the budget is spent; they are merged by (session, seq).
    func forEachIndexedEvent(
        inlineBudget: Int,
        inlineLimit: Int = 64 * 1024,
        _ body: (IndexedEvent) throws -> Void
    ) throws {
        // `length()` of a blob is read from the record header: SQLite does not load a payload to size it.
        let skeletonSQL = """
            SELECT session_id, seq, offset_ns, direction, kind,
                   CASE WHEN direction = \(Direction.clientToUpstream.code) THEN payload END AS payload,
                   length(payload) AS size
            FROM events ORDER BY session_id, seq
            """
        let inlineSQL = """
            SELECT session_id, seq, payload FROM events
            WHERE direction = \(Direction.upstreamToClient.code) AND kind = \(EventKind.data.code)
              AND length(payload) <= ?
            ORDER BY session_id, seq
            """
        try reading { db in
            let skeleton = try Row.fetchCursor(db, sql: skeletonSQL)
            let inline = try Row.fetchCursor(db, sql: inlineSQL, arguments: [inlineLimit])
            var budget = inlineBudget
            var nextInline: (key: (Int64, Int64), payload: Data)?
            var inlineDone = false
            func advanceInline() throws {
                nextInline = nil
                guard !inlineDone, budget > 0, let row = try inline.next() else {
                    inlineDone = true
                    return
                }
                let payload: Data = row["payload"] ?? Data()
                budget -= payload.count
                nextInline = ((row["session_id"], row["seq"]), payload)
            }
            try advanceInline()
            while let row = try skeleton.next() {
                var event = try Self.indexedEvent(row)
                guard event.direction == .upstreamToClient, event.kind == .data, event.size > 0 else {
                    try body(event)
                    continue
                }
                while let candidate = nextInline, candidate.key < (event.sessionID, event.seq) { try advanceInline() }
                if let candidate = nextInline, candidate.key == (event.sessionID, event.seq) {
                    event.payload = candidate.payload
                    try advanceInline()
                }
                try body(event)
            }
        }
    }

    /// Decodes a row of the skeleton query by column index: a tape of 100,000 sessions has half a million rows,
    /// and looking columns up by name costs a hash per value.
    private static func indexedEvent(_ row: Row) throws -> IndexedEvent {
        let sessionID = try row.decode(Int64.self, atIndex: 0)
        let seq = try row.decode(Int64.self, atIndex: 1)
        let (direction, kind) = try EventRecord.codes(
            direction: try row.decode(Int64.self, atIndex: 3),
            kind: try row.decode(Int64.self, atIndex: 4),
            sessionID: sessionID,
            seq: seq
        )
        let size = try row.decode(Int64?.self, atIndex: 6) ?? 0
        return IndexedEvent(
            sessionID: sessionID,
            seq: seq,
            offsetNanoseconds: try row.decode(Int64.self, atIndex: 2),
            direction: direction,
            kind: kind,
            payload: try row.decode(Data?.self, atIndex: 5),
            size: Int(clamping: size)
        )
    }

    /// Every session's id, route name and route id, in id order: what replay needs of the sessions table, read
    /// without decoding whole records.
    func sessionRoutes() throws -> [(id: Int64, route: String, routeID: Int64)] {
        try reading { db in
            var sessions: [(id: Int64, route: String, routeID: Int64)] = []
            let rows = try Row.fetchCursor(db, sql: "SELECT id, route, route_id FROM sessions ORDER BY id")
            while let row = try rows.next() {
                // A tape is untrusted: a crafted schema can hold a session without an id.
                guard let id = try row.decode(Int64?.self, atIndex: 0) else {
                    throw TapedeckError(.tapeUnreadable, "cannot read tape '\(path)': a session has no id")
                }
                sessions.append((id, try row.decode(String.self, atIndex: 1), try row.decode(Int64.self, atIndex: 2)))
            }
            return sessions
        }
    }

    /// Reads recorded upstream payloads, in the order given, handing each one's wanted bytes to `body` without
    /// an intermediate copy. Consecutive payloads of one session are read with one statement.
    ///
    /// - Throws: ``TapedeckError`` if the tape cannot be read, or no longer holds a payload of the size indexed
    ///   (the tape was replaced while replaying).
    func readUpstreamPayloads(
        _ payloads: [StoredPayload],
        into body: (StoredPayload, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        guard !payloads.isEmpty else { return }
        let sql = """
            SELECT seq, payload FROM events
            WHERE session_id = ? AND seq BETWEEN ? AND ?
              AND direction = \(Direction.upstreamToClient.code) AND kind = \(EventKind.data.code)
            ORDER BY seq
            """
        try reading { db in
            let statement = try db.cachedStatement(sql: sql)
            var index = 0
            while index < payloads.count {
                // One statement for a run of the same session in ascending order.
                var end = index + 1
                while end < payloads.count, payloads[end].sessionID == payloads[index].sessionID,
                    payloads[end].seq > payloads[end - 1].seq
                {
                    end += 1
                }
                let run = payloads[index..<end]
                let cursor = try Row.fetchCursor(
                    statement,
                    arguments: [run.first!.sessionID, run.first!.seq, run.last!.seq]
                )
                var wanted = run.startIndex
                while wanted < run.endIndex, let row = try cursor.next() {
                    let seq: Int64 = row[0]
                    guard seq == run[wanted].seq else { continue }
                    let payload = run[wanted]
                    let found = try row.withUnsafeData(atIndex: 1) { data -> Bool in
                        guard let data, data.count >= payload.bytes.upperBound else { return false }
                        try data.withUnsafeBytes { raw in
                            try body(payload, UnsafeRawBufferPointer(rebasing: raw[payload.bytes]))
                        }
                        return true
                    }
                    guard found else { throw Self.payloadMissing(payload, path: path) }
                    wanted += 1
                }
                guard wanted == run.endIndex else { throw Self.payloadMissing(run[wanted], path: path) }
                index = end
            }
        }
    }

    private static func payloadMissing(_ payload: StoredPayload, path: String) -> TapedeckError {
        TapedeckError(
            .tapeUnreadable,
            "cannot read tape '\(path)': session \(payload.sessionID) event \(payload.seq) is no longer as indexed"
                + " (was the tape replaced while replaying?)"
        )
    }

    /// The first bytes each side of every session of `route` sent (up to `length` of its first data event; empty
    /// for a side that sent none), with each session's id, in session order: what `--decode` recognizes a
    /// session's lens by.
    func identifiedSessionOpenings(
        ofRoute route: String,
        length: Int
    ) throws -> [(id: Int64, client: Data, upstream: Data)] {
        let sql = """
            SELECT e.session_id, e.direction, substr(e.payload, 1, ?) FROM events e
            JOIN (SELECT f.session_id, f.direction, min(f.seq) AS seq FROM events f
                  JOIN sessions s ON s.id = f.session_id
                  WHERE s.route = ? AND f.kind = \(EventKind.data.code) GROUP BY f.session_id, f.direction) first
            ON e.session_id = first.session_id AND e.seq = first.seq
            ORDER BY e.session_id
            """
        return try reading { db in
            var openings: [Int64: (client: Data, upstream: Data)] = [:]
            var order: [Int64] = []
            let rows = try Row.fetchCursor(db, sql: sql, arguments: [length, route])
            while let row = try rows.next() {
                let id = try row.decode(Int64.self, atIndex: 0)
                let payload = try row.decode(Data?.self, atIndex: 2) ?? Data()
                if openings[id] == nil {
                    order.append(id)
                    openings[id] = (Data(), Data())
                }
                if try row.decode(Int64.self, atIndex: 1) == Int64(Direction.clientToUpstream.code) {
                    openings[id]!.client = payload
                } else {
                    openings[id]!.upstream = payload
                }
            }
            return order.map { ($0, openings[$0]!.client, openings[$0]!.upstream) }
        }
    }

    /// The first bytes each side of one session sent (up to `length` of its first data event); nil when the tape
    /// has no such session.
    func sessionOpening(_ sessionID: Int64, length: Int) throws -> (client: Data, upstream: Data)? {
        guard try routeName(ofSession: sessionID) != nil else { return nil }
        let sql = """
            SELECT direction, substr(payload, 1, ?) FROM events
            WHERE session_id = ? AND kind = \(EventKind.data.code) ORDER BY seq
            """
        return try reading { db in
            var opening = (client: Data(), upstream: Data())
            var seen = (client: false, upstream: false)
            let rows = try Row.fetchCursor(db, sql: sql, arguments: [length, sessionID])
            while !(seen.client && seen.upstream), let row = try rows.next() {
                let payload = try row.decode(Data?.self, atIndex: 1) ?? Data()
                if try row.decode(Int64.self, atIndex: 0) == Int64(Direction.clientToUpstream.code) {
                    if !seen.client { opening.client = payload }
                    seen.client = true
                } else {
                    if !seen.upstream { opening.upstream = payload }
                    seen.upstream = true
                }
            }
            return opening
        }
    }

    /// The route of a session, nil when the tape has no such session.
    func routeName(ofSession sessionID: Int64) throws -> String? {
        try reading { db in
            try String.fetchOne(db, sql: "SELECT route FROM sessions WHERE id = ?", arguments: [sessionID])
        }
    }
}
