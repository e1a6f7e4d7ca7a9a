import Foundation
import GRDB

extension Tape {
    /// The recorded UDP flows of a route, in recording order, ready for replay.
    ///
    /// - Parameter rules: The route's client rules, as replay applies them.
    func recordedFlows(ofRoute route: String, rules: CompiledRules) throws -> [RecordedFlow] {
        let sessions = try reading { db in
            try Int64.fetchAll(db, sql: "SELECT id FROM sessions WHERE route = ? ORDER BY id", arguments: [route])
        }
        let redactions = try self.redactions(ofSessions: Set(sessions))
        return try sessions.map { id in
            var events: [EventRecord] = []
            try forEachEvent(inSession: id) { events.append($0) }
            var forced: [Int64: [CompiledRules.Span]] = [:]
            for redaction in redactions[id] ?? [] {
                // Any rule index gives the same token: a redacted span stands for its length alone.
                forced[redaction.seq, default: []].append(
                    CompiledRules.Span(
                        range: redaction.start..<(redaction.start + redaction.length),
                        meaning: .redact(rule: 0)
                    )
                )
            }
            return RecordedFlow(sessionID: id, events: events, rules: rules, redactions: forced)
        }
    }

    /// The recorded DNS-over-TCP sessions of a route, as flows of messages, in recording order.
    func recordedDNSStreams(ofRoute route: String) throws -> [RecordedFlow] {
        let sessions = try reading { db in
            try Int64.fetchAll(db, sql: "SELECT id FROM sessions WHERE route = ? ORDER BY id", arguments: [route])
        }
        return try sessions.map { id in
            var events: [EventRecord] = []
            try forEachEvent(inSession: id) { events.append($0) }
            return RecordedFlow(dnsStreamSessionID: id, events: events)
        }
    }

    /// How a route of the tape was recorded: over UDP or not, whether it carried DNS, and the protocol lens it
    /// was given (`auto` unless one was named); nil when the tape has no route of that name. The latest run that
    /// served the route decides.
    func recordedTransport(ofRoute route: String) throws -> (isDatagram: Bool, isDNS: Bool, lens: ProtocolLens)? {
        let records = try routes().filter { $0.name == route }
        guard let last = records.last else { return nil }
        let named = records.last { $0.protocolName != ProtocolLens.auto.rawValue }
        return (
            last.isDatagram, records.contains(where: \.dns),
            named.flatMap { ProtocolLens(rawValue: $0.protocolName) } ?? .auto
        )
    }
}
