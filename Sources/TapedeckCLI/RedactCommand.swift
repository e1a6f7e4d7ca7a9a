import ArgumentParser
import Foundation
import Tapedeck

/// `tapedeck redact`: redacts a recorded tape after the fact.
struct RedactCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redact",
        abstract: "Rewrite a tape with redact rules: every span becomes '*' bytes of the same length.",
        discussion: """
            The tape is rewritten into a new file beside it, which replaces it only once complete. The rules are \
            stored in the tape, so replay applies them: a redacted client span matches any bytes of its length. \
            Prints each redacted stretch (session, event, offset, length, rule) and a summary on stderr.
            """
    )

    @Argument(help: ArgumentHelp("The tape to redact.", valueName: "tape"))
    var tape: String

    @OptionGroup var rules: RuleOptions

    func run() throws {
        let rules = try rules.rules()
        guard rules.contains(where: { $0.kind == .redact }) else {
            throw ValidationError("nothing to redact: give --redact REGEX or a --preset with redact rules")
        }
        let redaction = try Tape.redact(tapeAt: tape, rules: rules)
        let output = OutputBuffer()
        for change in redaction.changes {
            output.write(
                "session \(change.sessionID) event \(change.seq) offset \(change.start) length \(change.length)  "
                    + TerminalText.escape(change.rule) + "\n"
            )
        }
        try output.finish()
        StandardStreams.writeError(
            redaction.changes.isEmpty
                ? "nothing matched; the rules are stored in '\(tape)'\n"
                : "redacted \(redaction.changes.count) spans in \(redaction.sessionCount) sessions of '\(tape)'\n"
        )
    }
}
