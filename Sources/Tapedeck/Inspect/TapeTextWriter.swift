import Foundation

/// Writes a tape's content as text (`tapedeck export --format text`): stable, deterministic, identical for identical
/// content, so that two renderings diff cleanly and `git diff` shows what a re-recording changed. `TapeTextReader`
/// reads it back.
///
/// One block per run, route, rule and session, each field on a line of its own; one block per event, its payload
/// as escaped text (`| GET / HTTP/1.1\r\n`, a line per line of the payload) or, when it is mostly not text, as hex
/// with offsets (`: 000000  16 03 01 …`). Times are relative where they can be: a session's event times are
/// nanoseconds since it started, gathered on `times` lines before its events, so that a re-recording whose bytes
/// did not change differs only there. See `docs/tape-format.md` for the grammar.
///
/// ```
/// tapedeck tape text 1
///
/// session 1
///   route 1 "default"
///   …
///   times 1537120 1895809
///   event 0 client data 44
///     | *3\r\n$3\r\nSET\r\n
/// ```
public struct TapeTextWriter {
    /// The first line of every text tape.
    public static let header = "tapedeck tape text 1"

    private let output: OutputBuffer

    /// A writer to `output`.
    public init(output: OutputBuffer) {
        self.output = output
    }

    /// Writes all of `tape`'s content, streaming.
    ///
    /// - Throws: ``TapedeckError`` when the tape cannot be read.
    public static func write(_ tape: Tape, to output: OutputBuffer) throws {
        let writer = TapeTextWriter(output: output)
        output.write(header + "\n")
        try tape.forEachContentRecord { writer.write($0) }
        output.flush()
    }

    /// Writes one record.
    public func write(_ record: TapeContentRecord) {
        switch record {
        case .run(let run):
            output.write("\nrun \(run.id ?? 0)\n")
            field("mode", TapeTextSyntax.quoted(run.mode))
            field("version", TapeTextSyntax.quoted(run.toolVersion))
            field("started", InspectFormat.exactTimestamp(run.startedAt))
            if let ended = run.endedAt { field("ended", InspectFormat.exactTimestamp(ended)) }
            if let label = run.label { field("label", TapeTextSyntax.quoted(label)) }
        case .route(let route):
            output.write("\nroute \(route.id ?? 0)\n")
            field("run", "\(route.runID)")
            field("name", TapeTextSyntax.quoted(route.name))
            field("listen", TapeTextSyntax.quoted(route.listen))
            field("upstream", TapeTextSyntax.quoted(route.upstream))
            field("protocol", TapeTextSyntax.quoted(route.protocolName))
            if route.dns { output.write("  dns\n") }
        case .rule(let rule):
            output.write("\nrule \(rule.id)\n")
            field("run", "\(rule.runID)")
            field("route", TapeTextSyntax.quoted(rule.route))
            field("position", "\(rule.position)")
            field("kind", TapeTextSyntax.quoted(rule.kind))
            field("scope", TapeTextSyntax.quoted(rule.scope))
            field("pattern", TapeTextSyntax.quoted(rule.pattern))
            if let secret = rule.secret { field("secret", TapeTextSyntax.quoted(secret)) }
            if let preset = rule.preset { field("preset", TapeTextSyntax.quoted(preset)) }
        case .session(let session, let tls):
            output.write("\nsession \(session.id ?? 0)\n")
            field("run", "\(session.runID)")
            field("route", "\(session.routeID) \(TapeTextSyntax.quoted(session.route))")
            field("client", TapeTextSyntax.quoted(session.clientAddress))
            field("upstream", TapeTextSyntax.quoted(session.upstreamAddress))
            field("started", InspectFormat.exactTimestamp(session.startedAt))
            if let ended = session.endedAt { field("ended", InspectFormat.exactTimestamp(ended)) }
            if let duration = session.durationNanoseconds { field("duration", "\(duration)") }
            field("outcome", session.outcome.rawValue)
            field("bytes", "\(session.clientBytes) \(session.upstreamBytes)")
            field("events", "\(session.eventCount)")
            if session.droppedDatagrams != 0 { field("dropped", "\(session.droppedDatagrams)") }
            if let tls { field("tls", TapeTextSyntax.json(tls)) }
        case .times(_, let offsets):
            // Ten to a line.
            var index = 0
            while index < offsets.count {
                let line = offsets[index..<min(index + 10, offsets.count)].map(String.init).joined(separator: " ")
                output.write("  times \(line)\n")
                index += 10
            }
        case .event(let event, let redactions):
            let side = event.direction == .clientToUpstream ? "client" : "upstream"
            let size = event.payload.map { " \($0.count)" } ?? ""
            output.write("  event \(event.seq) \(side) \(event.kind.rawValue)\(size)\n")
            if let payload = event.payload { TapeTextSyntax.writePayload(payload, to: output) }
            for redaction in redactions {
                output.write("    redact \(redaction.start) \(redaction.length) rule \(redaction.ruleID)\n")
            }
        }
    }

    private func field(_ name: String, _ value: String) {
        output.write("  \(name) \(value)\n")
    }
}
