import Foundation

/// A span of a recorded event that a rule covers: what `show` and `sessions` mark.
public struct SpanMark: Sendable, Hashable, Codable {
    /// Redacted (a placeholder is on the tape) or volatile.
    public var kind: Rule.Kind
    /// Where the span starts in the event's payload, and its length.
    public var start: Int
    public var length: Int
    /// The rule, as it would be written on the command line (with its preset, if any).
    public var rule: String
}

/// Finds the spans of a tape's recorded events that its stored rules cover: redactions where the recorder wrote
/// placeholders, and volatile spans where the route's volatile rules match the event's bytes.
///
/// Volatile spans are looked for event by event, so one a read split is not marked (replay finds it: it reads
/// each stream whole).
public final class SpanMarker {
    private let tape: Tape
    private let rules: [Int64: StoredRule]
    private var volatileRules: [String: [Direction: CompiledRules]] = [:]
    private let redactions: [Int64: [RedactionRecord]]

    /// Reads the tape's stored rules and redactions.
    ///
    /// - Throws: ``TapedeckError`` if the tape cannot be read.
    public convenience init(tape: Tape) throws {
        try self.init(tape: tape, sessions: nil)
    }

    /// Reads the tape's stored rules, and the redactions of `sessions` (of every session when nil): a marker for
    /// a few sessions need not read a large tape's every redaction.
    public init(tape: Tape, sessions: Set<Int64>?) throws {
        self.tape = tape
        let stored = try tape.storedRules()
        rules = Dictionary(stored.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        redactions = try tape.redactions(ofSessions: sessions)
        var byRoute: [String: [Rule]] = [:]
        for rule in stored where rule.rule.kind == .volatile { byRoute[rule.route, default: []].append(rule.rule) }
        for (route, list) in byRoute {
            let unique = list.uniqued()
            volatileRules[route] = [
                .clientToUpstream: try CompiledRules(unique, direction: .clientToUpstream, kinds: [.volatile]),
                .upstreamToClient: try CompiledRules(unique, direction: .upstreamToClient, kinds: [.volatile]),
            ]
        }
    }

    /// Whether the tape has any rule or redaction to mark.
    public var isEmpty: Bool { rules.isEmpty && redactions.isEmpty }

    /// The marks of one event of a session of `route`, in order.
    public func marks(of event: EventRecord, route: String) -> [SpanMark] {
        guard event.kind == .data, let payload = event.payload else { return [] }
        var marks: [SpanMark] = []
        for redaction in redactions[event.sessionID] ?? [] where redaction.seq == event.seq {
            marks.append(
                SpanMark(
                    kind: .redact,
                    start: redaction.start,
                    length: redaction.length,
                    rule: rules[redaction.ruleID].map { "\($0.rule)" } ?? "rule \(redaction.ruleID)"
                )
            )
        }
        if let compiled = volatileRules[route]?[event.direction], !compiled.isEmpty {
            for span in compiled.spans(in: payload, final: true).spans {
                guard !marks.contains(where: { ($0.start..<($0.start + $0.length)).overlaps(span.range) }) else {
                    continue
                }
                marks.append(
                    SpanMark(
                        kind: .volatile,
                        start: span.range.lowerBound,
                        length: span.range.count,
                        rule: compiled.rule(of: span.meaning).map { "\($0)" } ?? "volatile"
                    )
                )
            }
        }
        return marks.sorted { $0.start < $1.start }
    }

    /// How many redacted and volatile spans a session's events have.
    public func counts(ofSession session: SessionSummary) throws -> (redacted: Int, volatile: Int) {
        let redacted = redactions[session.id]?.count ?? 0
        guard volatileRules[session.route] != nil else { return (redacted, 0) }
        var volatile = 0
        try tape.forEachEvent(inSession: session.id) { event in
            volatile += marks(of: event, route: session.route).filter { $0.kind == .volatile }.count
        }
        return (redacted, volatile)
    }
}
