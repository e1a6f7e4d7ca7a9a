import ArgumentParser
import Foundation
import Tapedeck

/// `tapedeck stats`: totals per route and outcome, and the largest sessions.
struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Show a tape's totals per route and outcome, and its largest sessions."
    )

    @Argument(help: ArgumentHelp("The tape to read.", valueName: "tape"))
    var tape: String

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let statistics = try TapeStatistics(tape: try Tape(readingAt: tape))
        let output = OutputBuffer()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            output.write(String(decoding: try encoder.encode(statistics), as: UTF8.self) + "\n")
        } else {
            output.write(
                "\(statistics.runs) runs, \(statistics.sessions) sessions, \(statistics.events) events, \(statistics.bytes) bytes\n\n"
            )
            output.write(Self.pad(["ROUTE", "OUTCOME", "SESSIONS", "C→U", "U→C", "TOTAL TIME"]))
            for group in statistics.groups {
                output.write(
                    Self.pad([
                        TerminalText.escape(group.route), TerminalText.escape(group.outcome), "\(group.sessions)",
                        "\(group.clientBytes)",
                        "\(group.upstreamBytes)",
                        InspectFormat.duration(group.durationNanoseconds),
                    ])
                )
            }
            output.write("\nlargest sessions\n")
            for session in statistics.largest {
                output.write(
                    "  \(session.id)  \(TerminalText.escape(session.route))  \(session.clientBytes + session.upstreamBytes) bytes  \(session.outcome.rawValue)\n"
                )
            }
        }
        try output.finish()
    }

    static func pad(_ cells: [String]) -> String {
        let widths = [16, 18, 9, 12, 12, 0]
        return zip(cells, widths).map { cell, width in
            width == 0 ? cell : cell.padding(toLength: max(width, cell.count), withPad: " ", startingAt: 0)
        }.joined(separator: "  ") + "\n"
    }
}
