import ArgumentParser
import Foundation
import Logging
import Tapedeck

/// `tapedeck run`: serve routes in a mode around one command, for test suites in any language.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a command with Tapedeck between it and its services.",
        usage: "tapedeck run --tape <file> [--mode <mode>] [--upstream <address>] [<options>] -- <command> ...",
        discussion: """
            Starts the routes in the chosen mode, runs the command with their addresses in its environment \
            (TAPEDECK_ADDR, TAPEDECK_HOST, TAPEDECK_PORT for a single route; TAPEDECK_<ROUTE>_ADDR, _HOST, \
            _PORT for each named route; _SOCKET instead of _HOST and _PORT for a Unix socket; TAPEDECK_API with \
            --api), stops when it \
            exits, and exits with its status. Replay is strict: if the command passed but a connection \
            mismatched or a session was replayed in part, exits 3 (with --require-all, also if a recorded \
            session was never replayed). Recording \
            replaces the tape unless --append. SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed \
            on to the command; a second SIGINT or SIGTERM ends it and Tapedeck at once.
            """
    )

    @Option(help: ArgumentHelp("The tape to record into or replay from.", valueName: "file"))
    var tape: String?

    @Option(
        help: ArgumentHelp(
            "record, replay, auto (replay if the tape exists, else record), record-missing or proxy (default: $TAPEDECK_MODE, else replay).",
            valueName: "mode"
        ),
        transform: TapedeckMode.init(parsing:)
    )
    var mode: TapedeckMode?

    @OptionGroup var routes: NamedRouteOptions

    @Option(help: ArgumentHelp("A label stored with the recording run.", valueName: "text"))
    var label: String?

    @Flag(help: "When recording, add a run to the tape instead of replacing it.")
    var append = false

    @Flag(
        inversion: .prefixedNo,
        help: "Exit 3 if the command passed but a replayed connection mismatched or a session was replayed in part."
    )
    var strict = true

    @OptionGroup var playback: PlaybackOptions

    @OptionGroup var rules: RuleOptions

    @OptionGroup var secrets: SecretOptions

    @OptionGroup var tls: TLSOptions

    @OptionGroup var api: ControlAPIOptions

    @OptionGroup var web: WebOptions

    @OptionGroup var faults: FaultOptions

    @OptionGroup var runtime: RuntimeOptions

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command to run, after '--'.", valueName: "command"))
    var command: [String] = []

    func run() async throws {
        guard !command.isEmpty else { throw ValidationError("missing the command to run, after '--'") }
        let mode: TapedeckMode
        do {
            mode = try self.mode ?? TapedeckMode.fromEnvironment()
        } catch let error as TapedeckError {
            throw ValidationError(error.message)
        }
        if mode != .proxy, tape == nil { throw ValidationError("missing --tape (needed in \(mode) mode)") }
        let resolved = mode.resolved(forTape: tape)
        let configuration =
            resolved == .replay && api.address != nil
            ? try routes.configuration(for: resolved)
            : try api.configuration(
                routes,
                for: resolved,
                missingUpstream: "\(resolved) mode needs --upstream (or --config FILE)"
            )
        let served = tls.applied(to: try rules.applied(to: configuration?.routes ?? []))
        var options = Deck.Options(
            label: label,
            overwrite: !append,
            pace: playback.pace,
            repeatSessions: playback.repeatSessions,
            group: runtime.makeEventLoopGroup(),
            onWarning: CommandLineWarning.print
        )
        options.secrets = try secrets.secrets(for: served, tape: tape)
        options.certificateAuthorityDirectory = tls.certificateAuthorityDirectory
        options.api = api.address
        options.web = web.address
        options.expiry = try playback.expiry(configured: configuration?.expiry)
        // The command owns stdout and the terminal: Tapedeck speaks only when something is wrong.
        let logger = runtime.makeLogger(label: "tapedeck.run", defaultLevel: .warning, raiseOpenFileLimit: false)
        try faults.apply(to: &options, logger: logger)
        var runner = CommandRunner(
            command: command,
            mode: resolved,
            tape: tape,
            routes: served,
            options: options.with(logger: logger),
            strict: strict,
            requireAll: playback.requireAll,
            drainTimeout: runtime.drainTimeout,
            reportPath: playback.report
        )
        runner.reportFollowsSymlink = playback.force
        let status = try await runner.run()
        if status != 0 { throw ExitCode(status) }
    }
}
