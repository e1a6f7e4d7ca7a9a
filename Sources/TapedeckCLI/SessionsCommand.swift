import ArgumentParser
import Foundation
import Tapedeck

/// `tapedeck sessions`: one row per recorded session.
struct SessionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sessions",
        abstract: "List the sessions of a tape.",
        discussion:
            "Columns: id, route, label, client, start (UTC), age (how long ago it was recorded), duration, bytes "
            + "client→upstream and back, events, outcome (with the TLS negotiated, in brackets, where the session spoke "
            + "TLS)."
    )

    @Argument(help: ArgumentHelp("The tape to read.", valueName: "tape"))
    var tape: String

    @Option(help: "Only sessions of this route.")
    var route: String?

    @Option(help: "Only sessions of runs with this label.")
    var label: String?

    @Option(
        help: ArgumentHelp(
            "Only sessions with this outcome: \(SessionOutcome.allCases.map(\.rawValue).joined(separator: ", ")).",
            valueName: "outcome"
        ),
        transform: { text in
            guard let outcome = SessionOutcome(rawValue: text) else {
                throw ValidationError(
                    "unknown outcome '\(text)': use one of \(SessionOutcome.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            return outcome
        }
    )
    var outcome: SessionOutcome?

    @Option(
        help: ArgumentHelp(
            "Only sessions started at or after this UTC time (2026-11-25 or 2026-11-25T10:00:00Z).",
            valueName: "time"
        ),
        transform: TimestampText.parse
    )
    var since: Int64?

    @Option(parsing: .unconditional, help: "At most this many sessions.")
    var limit: Int?

    @Flag(help: "Also list readiness probes: connections that closed without a byte either way.")
    var all = false

    @Flag(help: "Print a JSON array of objects instead of a table.")
    var json = false

    func validate() throws {
        if let limit, limit < 0 { throw ValidationError("invalid --limit \(limit): use 0 or more, as --limit 10") }
    }

    func run() throws {
        var query = SessionQuery(route: route, label: label, outcome: outcome, limit: limit)
        query.sinceNanoseconds = since
        query.includeProbes = all || outcome == .probe
        let tapeFile = try Tape(readingAt: tape)
        let marker = try SpanMarker(tape: tapeFile)
        let tls = try tapeFile.tlsRecords()
        let output = OutputBuffer()
        let now = WallClock.nowNanoseconds()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            var first = true
            output.write("[")
            try tapeFile.forEachSession(matching: query) { session in
                var line = String(decoding: try encoder.encode(session), as: UTF8.self)
                // How long ago it was recorded, in whole seconds.
                let age = InspectFormat.ageSeconds(of: session.startedAt, now: now)
                line = String(line.dropLast()) + ",\"age_s\":\(age)}"
                if !marker.isEmpty {
                    // The spans the tape's rules cover, as two more fields.
                    let counts = try marker.counts(ofSession: session)
                    line =
                        String(line.dropLast())
                        + ",\"redacted_spans\":\(counts.redacted),\"volatile_spans\":\(counts.volatile)}"
                }
                if let record = tls[session.id] {
                    line =
                        String(line.dropLast()) + ",\"tls\":"
                        + String(decoding: try encoder.encode(record), as: UTF8.self) + "}"
                }
                output.write((first ? "\n  " : ",\n  ") + line)
                first = false
            }
            output.write(first ? "]\n" : "\n]\n")
        } else {
            output.write(
                Self.row([
                    "ID", "ROUTE", "LABEL", "CLIENT", "STARTED (UTC)", "AGE", "DURATION", "C→U", "U→C", "EVENTS",
                    "OUTCOME",
                ])
            )
            try tapeFile.forEachSession(matching: query) { session in
                var outcome = session.outcome.rawValue
                if !marker.isEmpty {
                    let counts = try marker.counts(ofSession: session)
                    var notes: [String] = []
                    if counts.redacted > 0 { notes.append("\(counts.redacted) redacted") }
                    if counts.volatile > 0 { notes.append("\(counts.volatile) volatile") }
                    if !notes.isEmpty { outcome += "  (" + notes.joined(separator: ", ") + ")" }
                }
                if let record = tls[session.id] { outcome += "  [" + TerminalText.escape(record.summary) + "]" }
                output.write(
                    Self.row([
                        "\(session.id)", TerminalText.escape(session.route),
                        session.label.map(TerminalText.escape) ?? "-", TerminalText.escape(session.client),
                        InspectFormat.timestamp(session.startedAt), InspectFormat.age(of: session.startedAt, now: now),
                        session.durationNanoseconds.map(InspectFormat.duration) ?? "-",
                        "\(session.clientBytes)", "\(session.upstreamBytes)", "\(session.events)",
                        outcome,
                    ])
                )
            }
        }
        try output.finish()
    }

    /// Fixed column widths, so rows print as they are read; long values are cut with '…'.
    static let widths = [6, 12, 14, 21, 24, 5, 10, 10, 10, 7, 0]

    /// Columns aligned right: the numbers.
    static let rightAligned: Set<Int> = [0, 5, 6, 7, 8, 9]

    static func row(_ cells: [String]) -> String {
        var line = ""
        for (index, (cell, width)) in zip(cells, widths).enumerated() {
            guard width > 0 else {
                line += cell
                continue
            }
            let fitted = cell.count > width ? String(cell.prefix(width - 1)) + "…" : cell
            let pad = String(repeating: " ", count: width - fitted.count)
            line += (rightAligned.contains(index) ? pad + fitted : fitted + pad) + "  "
        }
        return line + "\n"
    }
}
