import Foundation
import GRDB

extension Tape {
    /// The recorded HTTP/2 sessions of a route, decoded into streams, in recording order: those whose client began
    /// with the HTTP/2 preface. Sessions of the route that did not (HTTP/1.1 beside it) are left to byte-level
    /// replay.
    func recordedHTTP2Sessions(ofRoute route: String) throws -> [HTTP2SessionDecoder] {
        let sessions = try reading { db in
            try Int64.fetchAll(db, sql: "SELECT id FROM sessions WHERE route = ? ORDER BY id", arguments: [route])
        }
        return try sessions.compactMap { id in
            var decoder = HTTP2SessionDecoder(sessionID: id)
            try forEachEvent(inSession: id) { event in
                guard event.kind == .data, let payload = event.payload else { return }
                decoder.feed(payload, from: event.direction, at: event.offsetNanoseconds)
            }
            return decoder.isHTTP2 ? decoder : nil
        }
    }

    /// Whether the first recorded session of a route with client bytes began with the HTTP/2 client preface.
    func routeBeginsWithHTTP2Preface(_ route: String) throws -> Bool {
        let preface = Data(HTTP2FrameReader.preface)
        return try reading { db in
            // The client's first data events of the route's first session that has any, enough to hold a preface.
            guard
                let session = try Int64.fetchOne(
                    db,
                    sql: """
                        SELECT session_id FROM events WHERE kind = ? AND direction = ? AND session_id IN
                        (SELECT id FROM sessions WHERE route = ?) ORDER BY session_id LIMIT 1
                        """,
                    arguments: [EventKind.data.code, Direction.clientToUpstream.code, route]
                )
            else { return false }
            let cursor = try Optional<Data>.fetchCursor(
                db,
                sql: "SELECT payload FROM events WHERE session_id = ? AND kind = ? AND direction = ? ORDER BY seq",
                arguments: [session, EventKind.data.code, Direction.clientToUpstream.code]
            )
            var first = Data()
            while first.count < preface.count, let payload = try cursor.next() { first.append(payload ?? Data()) }
            return first.prefix(preface.count) == preface
        }
    }
}
