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
            summary on stderr; exits 3 if --strict and a connection mismatched, or --require-all and a session \
            was never replayed.
            """
    )

    @Option(help: ArgumentHelp("The tape to serve.", valueName: "file"))
    var tape: String

    @Option(help: ArgumentHelp("Address to accept clients on (default 127.0.0.1:0).", valueName: "address"))
    var listen: String?

    @Option(help: ArgumentHelp("The tape route to serve; needed when the tape has several.", valueName: "name"))
    var route: String?

    @Option(help: ArgumentHelp("Serve every route of this config (as used for recording) on its listen address.", valueName: "file"))
    var config: String?

    @Option(help: ArgumentHelp("fast (no waits), recorded (the recorded delays), or a factor: 2x, 0.5x.", valueName: "pace"))
    var pace: String = "fast"

    @Flag(name: .customLong("repeat"), help: "Let a recorded session serve more than one connection.")
    var repeatSessions = false

    @Flag(help: "Exit 3 at shutdown if any connection mismatched or found no session.")
    var strict = false

    @Flag(help: "Like --strict, and also exit 3 if a recorded session was never replayed.")
    var requireAll = false

    @Option(help: ArgumentHelp("Write the replay report as JSON to this file at shutdown.", valueName: "file"))
    var report: String?

    @Option(help: ArgumentHelp("The real upstream, for --record-missing.", valueName: "address"))
    var upstream: String?

    @Flag(help: "Relay connections no recorded session matches to the upstream, and record them into the tape.")
    var recordMissing = false

    @Option(help: ArgumentHelp("How long an upstream connect may take (with --record-missing).", valueName: "duration"))
    var connectTimeout: String = "5s"

    @OptionGroup var runtime: RuntimeOptions

    func run() async throws {
        let logger = runtime.makeLogger(label: "tapedeck.replay")
        let pace: ReplayPace
        do { pace = try ReplayPace(parsing: self.pace) } catch let error as TapedeckError { throw ValidationError(error.message) }
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
        do { timeout = try DurationText.parse(connectTimeout) } catch let error as TapedeckError { throw ValidationError(error.message) }
        let tapeFile = try Tape(readingAt: tape)
        let routes = try replayRoutes(in: tapeFile)
        var recorder: Recorder?
        var options = ReplayServer.Options(pace: pace, repeatSessions: repeatSessions)
        if recordMissing {
            let writable = try Tape(recordingAt: tape)
            let proxyRoutes = routes.compactMap { route in
                route.upstream.map { Route(name: route.name, listen: route.listen, upstream: $0, connectTimeout: timeout) }
            }
            recorder = try Recorder(tape: writable, routes: proxyRoutes, mode: "replay")
            options.recordMissing = MissingSessionRecording(recorder: recorder!, connectTimeout: timeout)
        }
        let server = try ReplayServer(
            tape: tapeFile, routes: routes, options: options, group: try runtime.makeEventLoopGroup(), logger: logger
        )
        ListeningAnnouncement.print(try await server.start())
        _ = await TerminationSignals.wait()
        let outcome = await server.shutdown(drainTimeout: runtime.drainTimeout)
        try await recorder?.finish()
        FileHandle.standardError.write(Data((outcome.summary + "\n").utf8))
        if let report {
            do {
                try outcome.json().write(to: URL(fileURLWithPath: report))
            } catch {
                throw TapedeckError(.invalidArgument, "cannot write report '\(report)': \(error.localizedDescription)")
            }
        }
        if (strict || requireAll) && !outcome.mismatches.isEmpty || requireAll && !outcome.unused.isEmpty {
            throw ExitCode(3)
        }
    }

    private func replayRoutes(in tape: Tape) throws -> [ReplayRoute] {
        if let config {
            return try ProxyConfiguration.load(path: config).routes.map(ReplayRoute.init)
        }
        let listenAddress: Endpoint
        let upstreamAddress: Endpoint?
        do {
            listenAddress = try listen.map(Endpoint.init(parsing:)) ?? Route.defaultListen
            upstreamAddress = try upstream.map(Endpoint.init(parsing:))
        } catch let error as TapedeckError {
            throw ValidationError(error.message)
        }
        if let route {
            return [ReplayRoute(name: route, listen: listenAddress, upstream: upstreamAddress)]
        }
        let names = try ReplayServer.routeNames(in: tape)
        guard names.count <= 1 else {
            throw TapedeckError(
                .invalidArgument,
                "tape '\(tape.path)' has routes \(names.map { "'\($0)'" }.joined(separator: ", ")): choose one with --route or serve all with --config"
            )
        }
        return [ReplayRoute(name: names.first ?? Route.defaultName, listen: listenAddress, upstream: upstreamAddress)]
    }
}
