import ArgumentParser
import Foundation
import Tapedeck

/// `tapedeck drift TAPE`: whether the live upstreams still answer as the tape says.
struct DriftCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drift",
        abstract: "Re-issue a tape's sessions to the live upstream and report which answers changed.",
        discussion:
            "Each session's client bytes go to the upstream exchange by exchange, in recorded order; the answers are "
            + "compared with the recorded ones, the tape's rules applied. Exit status: 0 when nothing drifted, 4 when "
            + "a session changed or failed, 1 for errors."
    )

    @Argument(help: ArgumentHelp("The tape to check.", valueName: "tape"))
    var tape: String

    @Option(
        help: ArgumentHelp(
            "The upstream to check every route against (HOST:PORT or unix:PATH); the recorded upstream by default.",
            valueName: "address"
        )
    )
    var upstream: String?

    @Option(help: ArgumentHelp("A config file naming each route's upstream.", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("Write the live conversations as a new tape, for review.", valueName: "new-tape"))
    var record: String?

    @Flag(help: "Replace the --record tape if it exists.")
    var overwrite = false

    @Option(help: ArgumentHelp("How many sessions to re-issue at once (1 keeps the recorded order).", valueName: "n"))
    var parallel = 1

    @Option(help: ArgumentHelp("How long a connect or an answer may take, as 5s or 500ms.", valueName: "duration"))
    var timeout = "5s"

    @Option(help: ArgumentHelp("Trust this PEM CA for upstreams recorded with TLS.", valueName: "file"))
    var upstreamCA: String?

    @Flag(help: "Do not verify the certificates of upstreams recorded with TLS.")
    var insecureUpstream = false

    @Flag(help: "Print the results as a JSON array.")
    var json = false

    @OptionGroup var rules: RuleOptions

    func validate() throws {
        if config != nil, upstream != nil { throw ValidationError("--config cannot be combined with --upstream") }
        guard parallel >= 1 else { throw ValidationError("--parallel must be 1 or more") }
    }

    func run() async throws {
        guard let timeout = try? DurationText.parse(timeout), timeout > .zero else {
            throw ValidationError("--timeout '\(self.timeout)' is not a duration above 0, as 5s or 500ms")
        }
        var options = DriftCheck.Options(
            parallel: parallel,
            timeout: timeout,
            tls: TLSSettings(mode: .originate, upstreamCA: upstreamCA, insecureUpstream: insecureUpstream)
        )
        options.rules = try rules.rules()
        // A new tape wants each changed conversation whole, not up to its first difference.
        options.continueAfterChange = record != nil
        options.keepsConversations = record != nil
        if let upstream {
            do {
                options.upstream = try Endpoint(parsing: upstream)
            } catch let error as TapedeckError {
                throw ValidationError("--upstream: \(error.message)")
            }
        }
        if let config {
            options.routes = try ProxyConfiguration.load(path: config, requireUpstream: false).routes
        }
        let source = try Tape(readingAt: tape)
        let report = try await DriftCheck.run(tape: source, options: options)
        if let record {
            try DriftCheck.record(report, from: source, to: record, overwrite: overwrite)
        }
        if json {
            try ReviewOutput.writeJSON(report.results)
        } else {
            try StandardStreams.writeOutput(Self.text(report, colour: ReviewOutput.wantsColour()))
        }
        if report.drifted { throw ExitCode(DiffCommand.differStatus) }
    }

    static func text(_ report: DriftCheck.Report, colour: Bool) -> String {
        func paint(_ text: String, _ code: String) -> String { ReviewOutput.paint(text, code, colour: colour) }
        var out = ""
        for result in report.results where result.status != .unchanged {
            let route = "route '\(TerminalText.escape(result.route))'"
            switch result.status {
            case .failed:
                out +=
                    paint("failed: session \(result.session) (\(route)): \(result.reason ?? "")", "31") + "\n"
            case .changed:
                let place =
                    result.direction == "end"
                    ? "how it ended, after exchange \(result.exchange ?? 0)"
                    : "exchange \(result.exchange ?? 0), upstream byte \(result.offset ?? 0)"
                out += "changed: session \(result.session) (\(route)): \(place)\n"
                out += paint("  recorded: \"\(result.recorded ?? "")\"", "31") + "\n"
                out += paint("  live:     \"\(result.live ?? "")\"", "32") + "\n"
                if let hint = result.hint { out += "  \(hint)\n" }
            case .unchanged:
                break
            }
        }
        out +=
            "\(report.count(.unchanged)) unchanged, \(report.count(.changed)) changed, \(report.count(.failed)) failed\n"
        return out
    }
}
