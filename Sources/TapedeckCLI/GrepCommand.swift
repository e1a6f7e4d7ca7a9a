import ArgumentParser
import Foundation
import Tapedeck

/// `tapedeck grep`: events whose payload contains a byte string or matches a regular expression.
struct GrepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grep",
        abstract: "Find sessions and events whose payload contains a string or matches a regex.",
        discussion:
            "Prints one line per matching event: session, event number, direction, offset, and an excerpt. Exits 1 if nothing matched, or if a regex works on one payload for more than a second."
    )

    @Argument(help: ArgumentHelp("The tape to search.", valueName: "tape"))
    var tape: String

    @Argument(
        help: ArgumentHelp(
            "The bytes to find (escapes \\r \\n \\t \\xNN allowed), or a regex with --regex.",
            valueName: "pattern"
        )
    )
    var pattern: String

    @Flag(help: "Treat the pattern as a regular expression (over the payload's bytes as Latin-1).")
    var regex = false

    @Option(help: "Only this session.")
    var session: Int64?

    @Flag(
        help:
            "Search protocol messages read through each session's lens (MySQL commands and result sets, HTTP/2 streams, WebSocket messages) instead of raw payloads."
    )
    var decode = false

    func run() throws {
        let search: TapeSearch
        do {
            search = try TapeSearch(regex ? .regex(pattern) : .bytes(escaped: pattern))
        } catch let error as TapedeckError {
            throw ValidationError(error.message)
        }
        let tapeFile = try Tape(readingAt: tape)
        let output = OutputBuffer()
        var matches = 0
        if decode {
            try search.forEachDecodedMatch(in: tapeFile, session: session) { match in
                matches += 1
                let arrow = match.direction == .clientToUpstream ? "→" : "←"
                output.write(
                    "session \(match.sessionID)  event \(match.seq)  \(arrow)  \(match.message.lens): "
                        + "\(TerminalText.escape(match.message.summary))\n"
                )
                for line in match.message.details { output.write("    \(TerminalText.escape(line))\n") }
            }
            try output.finish()
            if matches == 0 { throw ExitCode(1) }
            return
        }
        try search.forEachMatch(in: tapeFile, session: session) { match in
            matches += 1
            let arrow = match.direction == .clientToUpstream ? "→" : "←"
            output.write(
                "session \(match.sessionID)  event \(match.seq)  \(arrow)  at \(match.offset)  \(ByteExcerpt.render(match.excerpt))\n"
            )
        }
        try output.finish()
        if matches == 0 { throw ExitCode(1) }
    }
}
