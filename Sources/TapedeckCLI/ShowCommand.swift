import ArgumentParser
import Foundation
import Tapedeck

/// `tapedeck show`: one session as a conversation.
struct ShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print one session as a conversation, event by event.",
        discussion:
            "Text is shown as text with escapes for other bytes; --hex shows a hexdump. Colour by direction on a terminal (NO_COLOR turns it off). Spans the tape's rules cover are listed under each event: redacted (a placeholder is on the tape) and volatile."
    )

    @Argument(help: ArgumentHelp("The tape to read.", valueName: "tape"))
    var tape: String

    @Argument(help: ArgumentHelp("The session id (see 'tapedeck sessions').", valueName: "id"))
    var id: Int64

    @Flag(help: "Show payloads as a hexdump.")
    var hex = false

    @Flag(help: "Show whole payloads; by default each is cut after \(ShowCommand.defaultCut) bytes.")
    var full = false

    @Flag(help: "Print JSON: the session and its events, payloads in base64.")
    var json = false

    @Flag(
        help:
            "Also show the protocol messages each event completes, read through the session's lens: MySQL commands and result sets, HTTP/2 streams with decoded headers, WebSocket messages."
    )
    var decode = false

    static let defaultCut = 1024

    func run() throws {
        let tapeFile = try Tape(readingAt: tape)
        guard let summary = try Self.summary(of: id, in: tapeFile) else {
            throw TapedeckError(.invalidArgument, "tape '\(tape)' has no session \(id)")
        }
        let output = OutputBuffer()
        if json {
            try printJSON(summary, tapeFile, output)
        } else {
            try printLadder(summary, tapeFile, output)
        }
        try output.finish()
    }

    static func summary(of id: Int64, in tape: Tape) throws -> SessionSummary? {
        var found: SessionSummary?
        try tape.forEachSession(matching: SessionQuery(id: id)) { found = $0 }
        return found
    }

    private var colors: (client: String, upstream: String, dim: String, reset: String) {
        let enabled = isatty(1) == 1 && ProcessInfo.processInfo.environment["NO_COLOR"].map(\.isEmpty) ?? true
        return enabled ? ("\u{1B}[32m", "\u{1B}[36m", "\u{1B}[2m", "\u{1B}[0m") : ("", "", "", "")
    }

    private func printLadder(_ session: SessionSummary, _ tape: Tape, _ output: OutputBuffer) throws {
        let color = colors
        let marker = try SpanMarker(tape: tape)
        output.write(
            "session \(session.id)  route \(TerminalText.escape(session.route))  "
                + "\(TerminalText.escape(session.client)) → \(TerminalText.escape(session.upstream))  "
                + "\(session.outcome.rawValue)  \(session.durationNanoseconds.map(InspectFormat.duration) ?? "-")  "
                + "started \(InspectFormat.timestamp(session.startedAt))\n"
        )
        if let tls = try tape.tlsRecords(sessionIDs: [id])[id] { output.write(Self.tlsLine(tls)) }
        let isFlow = session.client.hasPrefix("udp:")
        // On a DNS route every message is decoded under its bytes; over TCP, message by message.
        let isDNS = try tape.routes().contains { $0.name == session.route && $0.dns }
        var streams = (client: DNSText.StreamDecoder(), upstream: DNSText.StreamDecoder())
        var decoder = decode ? try SessionDecoder(tape: tape, sessionID: id) : nil
        if decode, decoder == nil {
            output.write("\(color.dim)    (no protocol lens reads this session: shown as bytes)\(color.reset)\n")
        }
        try tape.forEachEvent(inSession: id) { event in
            let arrow = event.direction == .clientToUpstream ? "client → upstream" : "client ← upstream"
            let tint = event.direction == .clientToUpstream ? color.client : color.upstream
            let payload = event.payload ?? Data()
            let what: String
            switch event.kind {
            case .data: what = isFlow ? "datagram \(payload.count) B" : "\(payload.count) B"
            case .halfClose: what = "half-close (FIN)"
            case .close: what = "close"
            case .reset: what = "reset (RST)"
            case .connectFailed: what = "connect failed"
            case .refused: what = "refused (ICMP port unreachable)"
            case .fault: what = "toxic: " + TerminalText.escape(String(decoding: payload, as: UTF8.self))
            }
            output.write(
                "\(tint)+\(InspectFormat.duration(event.offsetNanoseconds))  \(arrow)  \(what)\(color.reset)\n"
            )
            // A toxic's payload is its description, already on the line.
            guard !payload.isEmpty, event.kind != .fault else { return }
            let shown = full ? payload : payload.prefix(Self.defaultCut)
            if hex {
                output.write(InspectFormat.hexdump(shown, indent: "    "))
            } else {
                output.write("    " + ByteExcerpt.render(shown) + "\n")
            }
            if shown.count < payload.count {
                output.write(
                    "\(color.dim)    … \(payload.count - shown.count) more bytes (--full shows all)\(color.reset)\n"
                )
            }
            if isDNS, event.kind == .data {
                let messages: [[String]]
                if isFlow {
                    messages = [DNSText.lines(of: payload) ?? ["not a DNS message"]]
                } else if event.direction == .clientToUpstream {
                    messages = streams.client.feed(payload)
                } else {
                    messages = streams.upstream.feed(payload)
                }
                for line in messages.joined() {
                    output.write("\(color.dim)    dns: \(TerminalText.escape(line))\(color.reset)\n")
                }
            }
            for message in decoder?.messages(of: event) ?? [] {
                output.write("\(tint)    \(message.lens): \(TerminalText.escape(message.summary))\(color.reset)\n")
                for line in message.details {
                    output.write("\(color.dim)        \(TerminalText.escape(line))\(color.reset)\n")
                }
            }
            for mark in marker.marks(of: event, route: session.route) {
                let what = mark.kind == .redact ? "redacted" : "volatile"
                output.write(
                    "\(color.dim)    ↳ \(what) bytes \(mark.start)..<\(mark.start + mark.length): "
                        + "\(TerminalText.escape(mark.rule))\(color.reset)\n"
                )
            }
        }
    }

    private func printJSON(_ session: SessionSummary, _ tape: Tape, _ output: OutputBuffer) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let tls = try tape.tlsRecords(sessionIDs: [id])[id]
        output.write(
            "{\"session\": " + String(decoding: try encoder.encode(session), as: UTF8.self) + ","
                + (tls.map {
                    "\n \"tls\": " + String(decoding: (try? encoder.encode($0)) ?? Data(), as: UTF8.self) + ","
                }
                    ?? "")
                + "\n \"events\": ["
        )
        var first = true
        let marker = try SpanMarker(tape: tape)
        var decoder = decode ? try SessionDecoder(tape: tape, sessionID: id) : nil
        try tape.forEachEvent(inSession: id) { event in
            var object = EventLine(event)
            if let messages = decoder?.messages(of: event), !messages.isEmpty { object.decoded = messages }
            let marks = marker.marks(of: event, route: session.route)
            object.marks = marks.isEmpty ? nil : marks
            output.write((first ? "\n  " : ",\n  ") + String(decoding: try encoder.encode(object), as: UTF8.self))
            first = false
        }
        output.write(first ? "]}\n" : "\n]}\n")
    }

    /// The session's TLS on one line under the header: what was negotiated, where it started, who the upstream
    /// was.
    static func tlsLine(_ tls: SessionTLSRecord) -> String {
        var parts = ["tls " + tls.summary]
        if let cipher = tls.cipher { parts.append(cipher) }
        if tls.upgrade != "direct" {
            parts.append("from client byte \(tls.clientOffset), upstream byte \(tls.upstreamOffset)")
        }
        if let subject = tls.upstreamSubject { parts.append("upstream \(subject)") }
        if let fingerprint = tls.upstreamFingerprint { parts.append("sha256 \(fingerprint)") }
        return TerminalText.escape(parts.joined(separator: "  ")) + "\n"
    }
}
