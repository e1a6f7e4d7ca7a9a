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
}
