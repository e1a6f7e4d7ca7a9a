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
            summary on stderr; exits 3 if --strict and a connection mismatched or a session was replayed in part, or \
            --require-all and a session was never replayed.
            """
    )

    @Option(help: ArgumentHelp("The tape to serve.", valueName: "file"))
    var tape: String

    @Option(help: ArgumentHelp("Address to accept clients on (default 127.0.0.1:0).", valueName: "address"))
    var listen: String?

    @Option(help: ArgumentHelp("The tape route to serve; needed when the tape has several.", valueName: "name"))
    var route: String?

    @Option(
        help: ArgumentHelp(
            "Serve every route of this config (as used for recording) on its listen address.",
            valueName: "file"
        )
    )
    var config: String?

    @Flag(
        help: "Exit 3 at shutdown if any connection mismatched or found no session, or a session was replayed in part."
    )
    var strict = false

    @OptionGroup var playback: PlaybackOptions

    @Option(help: ArgumentHelp("The real upstream, for --record-missing.", valueName: "address"))
    var upstream: String?

    @Flag(help: "Relay connections no recorded session matches to the upstream, and record them into the tape.")
    var recordMissing = false

    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("How long an upstream connect may take (with --record-missing).", valueName: "duration")
    )
    var connectTimeout: String = "5s"

    @OptionGroup var runtime: RuntimeOptions

    func run() async throws {
        let logger = runtime.makeLogger(label: "tapedeck.replay")
        let pace = try playback.replayPace()
        if config != nil, listen != nil || route != nil {
            throw ValidationError("--config cannot be combined with --listen or --route")
        }
        if config != nil, upstream != nil {
            throw ValidationError("--config cannot be combined with --upstream: the config names each route's upstream")
        }
        if recordMissing, config == nil, upstream == nil {
            throw ValidationError("--record-missing needs --upstream (or --config with upstreams)")
        }
        let timeout: Duration
        do { timeout = try DurationText.parse(connectTimeout) } catch let error as TapedeckError {
            throw ValidationError(error.message)
        }
        let deck = try await Deck.start(
            recordMissing ? .recordMissing : .replay,
            tape: tape,
            routes: try replayRoutes(connectTimeout: timeout),
            options: Deck.Options(
                pace: pace,
                repeatSessions: playback.repeatSessions,
                group: try runtime.makeEventLoopGroup(),
                logger: logger,
                onWarning: CommandLineWarning.print
            )
        )
        try await ListeningAnnouncement.announce(deck)
        _ = await TerminationSignals.wait()
        let outcome = try await deck.stop(drainTimeout: runtime.drainTimeout)
        let replay = outcome.replay ?? ReplayReport()
        StandardStreams.writeError(replay.summary + "\n")
        // Mismatches were logged as they happened; a session replayed in part is known only now: name each.
        for incomplete in replay.incomplete { StandardStreams.writeError("  \(incomplete)\n") }
        if let report = playback.report { try replay.write(toPath: report, followingSymlink: playback.force) }
        if strict || playback.requireAll, !replay.failures(requireAll: playback.requireAll).isEmpty {
            throw ExitCode(3)
        }
    }

    private func replayRoutes(connectTimeout: Duration) throws -> [Route] {
        if let config {
            return try ProxyConfiguration.load(
                path: config,
                defaultConnectTimeout: connectTimeout,
                requireUpstream: false
            ).routes
        }
        let listenAddress: Endpoint
        let upstreamAddress: Endpoint?
        do {
            listenAddress = try listen.map(Endpoint.init(parsing:)) ?? Route.defaultListen
            upstreamAddress = try upstream.map(Endpoint.init(parsing:))
        } catch let error as TapedeckError {
            throw ValidationError(error.message)
        }
        if route == nil, FileManager.default.fileExists(atPath: tape) {
            // A single route is served whatever its name (the deck sees to that); several need a choice.
            let names = try ReplayServer.routeNames(in: try Tape(readingAt: tape))
            guard names.count <= 1 else {
                throw TapedeckError(
                    .invalidArgument,
                    "tape '\(tape)' has routes \(names.map { "'\($0)'" }.joined(separator: ", ")): choose one with --route or serve all with --config"
                )
            }
        }
        return [
            Route(
                name: route ?? Route.defaultName,
                listen: listenAddress,
                upstream: upstreamAddress,
                connectTimeout: connectTimeout
            )
        ]
    }
}
