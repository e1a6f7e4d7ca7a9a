import Foundation
import NIOCore

/// Writes what a drift check heard as a new tape (`tapedeck drift --record NEW.tape`), for review beside the old
/// one with `tapedeck diff` or `git diff`.
///
/// The new tape keeps the old one's runs, routes and rules, and its sessions' ids, so the two pair one to one. Each
/// re-issued session holds the live conversation: the client's bytes as sent, the upstream's as they came, with
/// their times. A changed session goes on past its first difference to its end, the recorded client bytes sent
/// exchange by exchange as before. Sessions the check did not re-issue (probes, or those it was not asked to check) are
/// copied as they were.
enum DriftRecording {
    /// Writes `report`'s live sessions, with the rest of `tape`, to a new tape at `path`.
    ///
    /// - Throws: ``TapedeckError`` when the tape cannot be read or the new one written.
    static func write(_ report: DriftCheck.Report, from tape: Tape, to path: String, overwrite: Bool) throws {
        let redaction = try Redaction(tape: tape)
        let target = try TapeImport(at: path, overwrite: overwrite)
        do {
            var replacing = false
            try tape.forEachContentRecord { record in
                switch record {
                case .session(let session, let tls):
                    guard let id = session.id, let live = report.live[id] else {
                        replacing = false
                        return try target.add(record)
                    }
                    replacing = true
                    let rerecording = live.rerecording(
                        events: try redaction.apply(to: live.events, route: session.route)
                    )
                    try target.add(.session(rerecording.applied(to: session), tls: tls))
                    for (event, redactions) in rerecording.events ?? [] {
                        try target.add(.event(event, redactions: redactions))
                    }
                case .times, .event:
                    if !replacing { try target.add(record) }
                default:
                    try target.add(record)
                }
            }
            try target.finish()
        } catch {
            target.discard()
            throw error
        }
    }

    /// The tape's redact rules, applied to live events as the recorder applies them: the new tape keeps no secret
    /// the old one kept out.
    struct Redaction {
        private var rules: [String: (client: CompiledRules, upstream: CompiledRules, ids: [Int64])] = [:]

        init(tape: Tape) throws {
            var byRoute: [String: [(rule: Rule, id: Int64)]] = [:]
            for stored in try tape.storedRules() where stored.rule.kind == .redact {
                var list = byRoute[stored.route, default: []]
                // As replay reads them: each rule once, its first row standing for it.
                if !list.contains(where: { $0.rule == stored.rule }) { list.append((stored.rule, stored.id)) }
                byRoute[stored.route] = list
            }
            for (route, list) in byRoute {
                let rules = list.map(\.rule)
                self.rules[route] = (
                    try CompiledRules(rules, direction: .clientToUpstream, kinds: [.redact]),
                    try CompiledRules(rules, direction: .upstreamToClient, kinds: [.redact]),
                    list.map(\.id)
                )
            }
        }

        /// `events` with the route's redacted spans replaced by placeholders, and where.
        func apply(
            to events: [EventRecord],
            route: String
        ) throws -> [(event: EventRecord, redactions: [RedactionRecord])] {
            guard let rules = rules[route] else { return events.map { ($0, []) } }
            let redacted = RecordingRedactor.redact(events, client: rules.client, upstream: rules.upstream)
            return events.map { event in
                guard let found = redacted[event.seq] else { return (event, []) }
                var copy = event
                copy.payload = Data(found.payload.readableBytesView)
                let spans = found.redactions.compactMap { part -> RedactionRecord? in
                    guard rules.ids.indices.contains(part.rule) else { return nil }
                    return RedactionRecord(
                        sessionID: event.sessionID,
                        seq: event.seq,
                        start: part.start,
                        length: part.length,
                        ruleID: rules.ids[part.rule]
                    )
                }
                return (copy, spans)
            }
        }
    }
}
