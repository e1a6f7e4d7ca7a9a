import ArgumentParser
import Foundation
import Tapedeck
import Testing

@testable import TapedeckCLI

/// The command line as the parser reads it, without running anything: typed flag values, the one line a bad
/// value is refused with, and where routes are checked for an upstream.
struct CommandLineParsingTests {
    private func parse<Command: ParsableCommand>(_ arguments: [String], as type: Command.Type) throws -> Command {
        try #require(try TapedeckCommand.parseAsRoot(arguments) as? Command)
    }

    /// The line `tapedeck: error:` would print for `arguments`, and whether it is a usage error (exit 2).
    private func refusal(_ arguments: [String]) -> (line: String, isUsageError: Bool)? {
        do {
            _ = try TapedeckCommand.parseAsRoot(arguments)
            return nil
        } catch {
            return (TapedeckCommand.errorLine(for: error), TapedeckCommand.exitCode(for: error) == .validationFailure)
        }
    }

    @Test func routeFlagsAreReadAsAddressesAndDurations() throws {
        let proxy = try parse(
            [
                "proxy", "--listen", "[::1]:0", "--upstream", "unix:/tmp/app.sock", "--name", "db",
                "--connect-timeout", "250ms", "--drain-timeout", "1.5s",
            ],
            as: ProxyCommand.self
        )
        #expect(proxy.routes.routes.listen == .tcp(host: "::1", port: 0))
        #expect(proxy.routes.routes.upstream == .unix(path: "/tmp/app.sock"))
        #expect(proxy.routes.name == "db")
        #expect(proxy.routes.routes.connectTimeout == .milliseconds(250))
        #expect(proxy.runtime.drainTimeout == .milliseconds(1500))
    }

    @Test func leftOutFlagsTakeTheirDefaults() throws {
        let record = try parse(["record", "--tape", "x.tape"], as: RecordCommand.self)
        #expect(record.routes.routes.listen == nil)
        #expect(record.routes.routes.upstream == nil)
        #expect(record.routes.routes.config == nil)
        #expect(record.routes.routes.connectTimeout == Route.defaultConnectTimeout)
        #expect(record.routes.name == Route.defaultName)
        #expect(record.runtime.drainTimeout == .seconds(5))
        let replay = try parse(["replay", "--tape", "x.tape"], as: ReplayCommand.self)
        #expect(replay.playback.pace == .fast)
        #expect(replay.route == nil)
        let run = try parse(["run", "--", "true"], as: RunCommand.self)
        #expect(run.mode == nil)
    }

    @Test(arguments: ["fast", "recorded", "2x", "0.5x"])
    func paceIsReadAsAPace(text: String) throws {
        let replay = try parse(["replay", "--tape", "x.tape", "--pace", text], as: ReplayCommand.self)
        #expect(replay.playback.pace == (try ReplayPace(parsing: text)))
        let run = try parse(["run", "--tape", "x.tape", "--pace", text, "--", "true"], as: RunCommand.self)
        #expect(run.playback.pace == replay.playback.pace)
    }

    @Test func modeIsReadAsAModeIgnoringCase() throws {
        let run = try parse(["run", "--tape", "x.tape", "--mode", "Record-Missing", "--", "true"], as: RunCommand.self)
        #expect(run.mode == .recordMissing)
        #expect(run.command == ["true"])
    }

    @Test func inspectFiltersAreReadAsTimesOutcomesAndFormats() throws {
        let sessions = try parse(
            ["sessions", "x.tape", "--since", "2026-11-25T10:00:00Z", "--outcome", "probe", "--limit", "0"],
            as: SessionsCommand.self
        )
        #expect(sessions.since == (try TimestampText.parse("2026-11-25T10:00:00Z")))
        #expect(sessions.outcome == .probe)
        #expect(sessions.limit == 0)
        let export = try parse(["export", "x.tape", "--format", "pcapng", "--output", "-"], as: ExportCommand.self)
        #expect(export.format == .pcapng)
    }

    @Test(arguments: [
        (["proxy", "--upstream", "nowhere"], "invalid address 'nowhere': expected HOST:PORT or unix:/path"),
        (
            ["proxy", "--listen", "127.0.0.1:99999"],
            "invalid address '127.0.0.1:99999': port must be a number from 0 to 65535"
        ),
        (
            ["replay", "--tape", "x.tape", "--upstream", "[::1]"],
            "invalid address '[::1]': expected ':PORT' after ']'"
        ),
        (
            ["proxy", "--connect-timeout", "soon"],
            "invalid duration 'soon': use a number with ms, s, m, h or d, as 5s"
        ),
        (["record", "--tape", "x.tape", "--drain-timeout", "-5s"], "invalid duration '-5s'"),
        (
            ["replay", "--tape", "x.tape", "--pace", "slow"],
            "invalid pace 'slow': use fast, recorded, or a factor such as 2x or 0.5x"
        ),
        (
            ["run", "--pace", "1e-300x", "--", "true"],
            "invalid pace '1e-300x': the factor must be from 0.001x to 1000000x"
        ),
        (
            ["run", "--mode", "rewind", "--", "true"],
            "invalid mode 'rewind': use proxy, record, replay, record-missing, auto"
        ),
        (["sessions", "x.tape", "--since", "2026-02-30"], "invalid time '2026-02-30': month 2 of 2026 has no day 30"),
        (["sessions", "x.tape", "--outcome", "fine"], "unknown outcome 'fine': use one of closed, "),
        (["sessions", "x.tape", "--limit", "-1"], "invalid --limit -1: use 0 or more, as --limit 10"),
        (["export", "x.tape", "--format", "zip", "--output", "-"], "unknown format 'zip': use pcapng, jsonl or text"),
        (
            ["proxy", "--log-level", "loud"],
            "invalid log level 'loud': use one of trace, debug, info, notice, warning, error, critical"
        ),
        (["proxy", "--threads", "0"], "invalid --threads 0: use a count from 1 to 256"),
        // A value the parser refuses without a reason keeps the parser's words.
        (["proxy", "--threads", "many"], "the value 'many' is invalid for '--threads <count>'"),
    ])
    func badValuesAreRefusedWhileParsingInOneLine(arguments: [String], line: String) throws {
        let refused = try #require(refusal(arguments), "parsed \(arguments)")
        #expect(refused.line.hasPrefix(line), "\(refused.line)")
        #expect(!refused.line.contains("\n"))
        #expect(refused.isUsageError)
    }

    @Test func anUnknownOptionIsSaidBeforeAMissingUpstream() throws {
        #expect(refusal(["proxy", "--bogus"])?.line == "unknown option '--bogus'")
        // Parsing alone asks for no upstream: that is checked when the routes are made, for the mode.
        let proxy = try parse(["proxy"], as: ProxyCommand.self)
        let error = #expect(throws: ValidationError.self) { try proxy.routes.configuration(for: .proxy) }
        #expect(error?.message == "missing --upstream (or --config FILE)")
    }

    @Test func routesAreCheckedForAnUpstreamOnlyWhenTheModeConnectsToOne() throws {
        let routes = try parse(["proxy", "--name", "db"], as: ProxyCommand.self).routes.routes
        for mode in TapedeckMode.allCases {
            if mode.needsUpstream {
                let error = #expect(throws: ValidationError.self) {
                    try routes.configuration(name: "db", for: mode, missingUpstream: "\(mode) mode needs --upstream")
                }
                #expect(error?.message == "\(mode) mode needs --upstream")
            } else {
                let configuration = try routes.configuration(name: "db", for: mode)
                #expect(configuration.routes == [Route(name: "db")])
            }
        }
        #expect(TapedeckMode.allCases.filter { !$0.needsUpstream } == [.replay])
    }

    @Test func aConfigFileIsCheckedForUpstreamsByTheSameRule() throws {
        let directory = try TemporaryDirectory()
        let file = directory.path("routes.yaml")
        try Data("routes:\n  - name: a\n    listen: 127.0.0.1:0\n".utf8).write(to: URL(fileURLWithPath: file))
        let routes = try parse(["replay", "--tape", "x.tape", "--config", file], as: ReplayCommand.self).routes
        #expect(try routes.configuration(name: "ignored", for: .replay).routes.map(\.name) == ["a"])
        let error = #expect(throws: TapedeckError.self) { try routes.configuration(name: "ignored", for: .record) }
        #expect(error?.message == "invalid config '\(file)': route 'a' has no 'upstream'")
    }

    @Test func flagValuesThatMakeABadRouteAreUsageErrors() throws {
        let proxy = try parse(["proxy", "--upstream", "127.0.0.1:0"], as: ProxyCommand.self)
        let error = #expect(throws: ValidationError.self) { try proxy.routes.configuration(for: .proxy) }
        #expect(
            error?.message == "route 'default': upstream 127.0.0.1:0 has port 0; give the port the upstream listens on"
        )
    }

    @Test func onlyTheParsersRefusalOfAValueIsShortened() {
        #expect(
            TapedeckCommand.refusedValueReason(
                in: "The value 'x' is invalid for '--upstream <address>': invalid address 'x': expected HOST:PORT"
            ) == "invalid address 'x': expected HOST:PORT"
        )
        #expect(TapedeckCommand.refusedValueReason(in: "The value 'x' is invalid for '--threads <count>'") == nil)
        #expect(TapedeckCommand.refusedValueReason(in: "Unknown option '--bogus'") == nil)
    }
}
