import ArgumentParser
import Foundation
import Tapedeck

/// `tapedeck import`: a tape from its text form (`export --format text`), as written or edited by hand.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Make a tape from its text form (export --format text), as exported or edited by hand.",
        discussion:
            "The tape's content (runs, routes, rules, sessions, events, bytes, outcomes, TLS, redactions and timing) "
            + "is what the text says. The tape is built beside its path and put in place once complete."
    )

    @Option(
        help: ArgumentHelp("The form of the input: text.", valueName: "format"),
        transform: { text in
            guard text == "text" else { throw ValidationError("unknown format '\(text)': use text") }
            return text
        }
    )
    var format: String

    @Argument(help: ArgumentHelp("The text to read ('-' for stdin).", valueName: "file"))
    var file: String

    @Option(help: ArgumentHelp("The tape to write.", valueName: "tape"))
    var tape: String

    @Flag(help: "Replace the tape if it exists.")
    var overwrite = false

    func run() throws {
        let importing = try TapeImport(at: tape, overwrite: overwrite)
        do {
            try TapeTextReader.read(fileAt: file) { try importing.add($0) }
            try importing.finish()
        } catch {
            importing.discard()
            throw error
        }
    }
}
