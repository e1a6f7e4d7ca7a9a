import ArgumentParser
import Foundation
import Logging
import Tapedeck

/// `tapedeck replay`: serve a tape's sessions with no upstream.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Serve recorded sessions back to clients, with no upstream.",
        discussion: """
            The client's bytes choose the session; each recorded session is served at most once unless --repeat. \
            Prints 'listening <route> <address>' per route once bound. At shutdown (SIGINT/SIGTERM) prints a \
            summary on stderr; exits 3 if --strict and a connection mismatched, a session was replayed in part, or a \
            session was older than --max-age with --on-expired fail, or --require-all and a session was never \
            replayed.
            """
    )

    @Option(help: ArgumentHelp("The tape to serve.", valueName: "file"))
    var tape: String

    @OptionGroup var routes: RouteOptions

    @Option(help: ArgumentHelp("The tape route to serve; needed when the tape has several.", valueName: "name"))
    var route: String?

    @Flag(
        help: "Exit 3 at shutdown if any connection mismatched or found no session, or a session was replayed in part."
    )
    var strict = false

    @OptionGroup var playback: PlaybackOptions

    @Flag(help: "Relay connections no recorded session matches to the upstream, and record them into the tape.")
    var recordMissing = false

    @OptionGroup var rules: RuleOptions

    @OptionGroup var secrets: SecretOptions

    @OptionGroup var tls: TLSOptions

    @OptionGroup var api: ControlAPIOptions

    @OptionGroup var web: WebOptions

    @OptionGroup var faults: FaultOptions

    @OptionGroup var runtime: RuntimeOptions

    func run() async throws {
        TerminationSignals.catchEarly()
        let logger = runtime.makeLogger(label: "tapedeck.replay")
        let mode: TapedeckMode = recordMissing ? .recordMissing : .replay
        let configuration = try replayConfiguration(for: mode)
        let served = tls.applied(to: try rules.applied(to: configuration.routes))
        var options = Deck.Options(
            pace: playback.pace,
            repeatSessions: playback.repeatSessions,
            group: runtime.makeEventLoopGroup(),
            logger: logger,
            onWarning: CommandLineWarning.print,
            drainTimeout: runtime.drainTimeout
        )
        options.secrets = try secrets.secrets(for: served, tape: tape)
        options.certificateAuthorityDirectory = tls.certificateAuthorityDirectory
        options.api = api.address
        options.web = web.address
        options.expiry = try playback.expiry(configured: configuration.expiry)
        try faults.apply(to: &options, logger: logger)
        let deck = try await Deck.start(mode, tape: tape, routes: served, options: options)
        try await ListeningAnnouncement.announce(deck)
        try await TerminationSignals.serve(deck, logger: logger)
        let outcome = try await deck.stop()
        let replay = outcome.replay ?? ReplayReport()
        StandardStreams.writeError(replay.summary + "\n")
        // Mismatches were logged as they happened; a session replayed in part is known only now: name each.
        for incomplete in replay.incomplete { StandardStreams.writeError("  \(incomplete)\n") }
        for expired in replay.expired where expired.status == .failed { StandardStreams.writeError("  \(expired)\n") }
        if let report = playback.report { try replay.write(toPath: report, followingSymlink: playback.force) }
        if strict || playback.requireAll, !replay.failures(requireAll: playback.requireAll).isEmpty {
            throw ExitCode(3)
        }
    }

    private func replayConfiguration(for mode: TapedeckMode) throws -> ProxyConfiguration {
        if routes.config != nil, routes.listen != nil || route != nil {
            throw ValidationError("--config cannot be combined with --listen or --route")
        }
        if routes.config != nil, routes.upstream != nil {
            throw ValidationError("--config cannot be combined with --upstream: the config names each route's upstream")
        }
        let configuration = try routes.configuration(
            name: route ?? Route.defaultName,
            for: mode,
            missingUpstream: "--record-missing needs --upstream (or --config with upstreams)"
        )
        if routes.config == nil, route == nil, FileManager.default.fileExists(atPath: tape) {
            // A single route is served whatever its name (the deck sees to that); several need a choice.
            let names = try ReplayServer.routeNames(in: try Tape(readingAt: tape))
            guard names.count <= 1 else {
                throw TapedeckError(
                    .invalidArgument,
                    "tape '\(tape)' has routes \(names.map { "'\($0)'" }.joined(separator: ", ")): choose one with --route or serve all with --config"
                )
            }
        }
        return configuration
    }
}
