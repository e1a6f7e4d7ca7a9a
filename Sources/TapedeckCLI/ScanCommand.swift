import ArgumentParser
import Foundation
import Tapedeck

/// `tapedeck scan`: likely secrets in a tape, with an exit status a CI job can gate on.
struct ScanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scan",
        abstract: "Find likely secrets in a tape: passwords, tokens, keys.",
        discussion: """
            Prints one line per finding: session, event, offset in the event, who sent it (client or upstream), \
            kind, and the bytes around it with the secret masked. A summary goes to stderr. Kinds: \
            \(SecretKind.names). Spans the recorder redacted (all '*') are not findings.

            Exit status: 0 when the tape is clean, 1 when something was found, 2 for any error (a missing or \
            unreadable tape, a bad option), so that a CI job can tell a finding from a broken check.
            """
    )

    /// The status for an error: not 1, which means findings here.
    static let errorStatus: Int32 = 2

    @Argument(help: ArgumentHelp("The tape to scan.", valueName: "tape"))
    var tape: String

    @Flag(help: "Print a JSON array of findings: session, seq, offset, direction, kind, excerpt.")
    var json = false

    func run() throws {
        let summary: Summary
        do {
            summary = try scan()
        } catch let error as TapedeckError {
            CommandLineFailure.exit(message: error.description, status: Self.errorStatus)
        } catch {
            CommandLineFailure.exit(message: TapedeckCommand.errorLine(for: error), status: Self.errorStatus)
        }
        StandardStreams.writeError(summary.line + "\n")
        if summary.findings > 0 { throw ExitCode(1) }
    }

    /// Prints the findings and counts them.
    private func scan() throws -> Summary {
        let scanner = try SecretScanner()
        let tapeFile = try Tape(readingAt: tape)
        let output = OutputBuffer()
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var summary = Summary()
        if json { output.write("[") }
        try scanner.forEachFinding(in: tapeFile) { finding in
            if json {
                let object = String(decoding: try encoder.encode(finding), as: UTF8.self)
                output.write((summary.findings == 0 ? "\n  " : ",\n  ") + object)
            } else {
                output.write(finding.line + "\n")
            }
            summary.count(finding)
        }
        if json { output.write(summary.findings == 0 ? "]\n" : "\n]\n") }
        try output.finish()
        return summary
    }

    /// How many findings, in how many sessions.
    struct Summary {
        var findings = 0
        var sessions = 0
        private var lastSession: Int64?

        /// Counts a finding; the scanner gives a session's findings together.
        mutating func count(_ finding: SecretFinding) {
            findings += 1
            if finding.sessionID != lastSession { sessions += 1 }
            lastSession = finding.sessionID
        }

        /// `3 likely secrets in 2 sessions`, or `no likely secrets`.
        var line: String {
            guard findings > 0 else { return "no likely secrets" }
            let secrets = findings == 1 ? "1 likely secret" : "\(findings) likely secrets"
            return secrets + (sessions == 1 ? " in 1 session" : " in \(sessions) sessions")
        }
    }
}
