import ArgumentParser
import Foundation
import Tapedeck

/// `tapedeck diff A B`: what changed between two tapes.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show what changed between two tapes: sessions only in one, and the first exchange that differs.",
        discussion:
            "Sessions pair by route and the client's bytes, as replay picks them. Exit status: 0 when the tapes hold the "
            + "same conversations (timing aside), 4 when they differ, 1 for errors."
    )

    @Argument(help: ArgumentHelp("The first tape (the old one, say).", valueName: "a"))
    var a: String

    @Argument(help: ArgumentHelp("The second tape.", valueName: "b"))
    var b: String

    @Flag(help: "Print the differences as JSON.")
    var json = false

    /// The exit status of tapes that differ, as `drift` uses for drift.
    static let differStatus: Int32 = 4

    func run() throws {
        let first = try Tape(readingAt: a)
        let second = try Tape(readingAt: b)
        let diff = try TapeDiff.compare(first, second)
        if json {
            try ReviewOutput.writeJSON(diff)
        } else {
            try StandardStreams.writeOutput(Self.text(diff, a: a, b: b, colour: ReviewOutput.wantsColour()))
        }
        if !diff.identical { throw ExitCode(Self.differStatus) }
    }

    static func text(_ diff: TapeDiff, a: String, b: String, colour: Bool) -> String {
        func paint(_ text: String, _ code: String) -> String { ReviewOutput.paint(text, code, colour: colour) }
        var out = "--- \(TerminalText.escape(a))\n+++ \(TerminalText.escape(b))\n"
        for lone in diff.onlyInA {
            out +=
                paint(
                    "only in a: session \(lone.session) (route '\(TerminalText.escape(lone.route))', \(lone.clientBytes) bytes from the client)",
                    "31"
                ) + "\n"
        }
        for lone in diff.onlyInB {
            out +=
                paint(
                    "only in b: session \(lone.session) (route '\(TerminalText.escape(lone.route))', \(lone.clientBytes) bytes from the client)",
                    "32"
                ) + "\n"
        }
        for change in diff.changed {
            let what: String
            switch change.direction {
            case "end": what = "how it ended"
            case Direction.clientToUpstream.rawValue: what = "exchange \(change.exchange), client byte \(change.offset)"
            default: what = "exchange \(change.exchange), upstream byte \(change.offset)"
            }
            out +=
                "changed: session \(change.a) → \(change.b) (route '\(TerminalText.escape(change.route))'): \(what)\n"
            out += paint("  a: \"\(change.aExcerpt)\"", "31") + "\n"
            out += paint("  b: \"\(change.bExcerpt)\"", "32") + "\n"
        }
        out +=
            "\(diff.unchanged.count) unchanged, \(diff.changed.count) changed, \(diff.onlyInA.count) only in a, "
            + "\(diff.onlyInB.count) only in b\n"
        return out
    }
}
