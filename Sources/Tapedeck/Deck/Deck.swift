import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Routes served in one mode on one tape: the one entry point for proxying, recording and replaying.
///
/// Start a deck, point the program under test at each route's bound address, and stop it: stopping drains
/// open connections and, when recording, flushes the tape. After a replay the outcome holds the report, so a
/// test can assert on it. The command line's `proxy`, `record`, `replay` and `run` are thin layers over this.
///
/// ```swift
/// let deck = try await Deck.start(
///     try TapedeckMode.fromEnvironment(),
///     tape: "fixtures/redis.tape",
///     routes: [Route(upstream: try Endpoint(parsing: "127.0.0.1:6379"))]
/// )
/// // … run the client against deck.address …
/// let outcome = try await deck.stop()
/// try outcome.replay?.verify()
/// ```
///
/// Always stop a deck you started: its listeners stay open until then. `withTapedeck` in `TapedeckTesting`
/// does that for you, on success and on error. A deck stops once: a second ``stop(drainTimeout:)`` does nothing
/// and returns (or throws) what the first did.
///
/// Inside, a deck runs its server and its recorder as `Service`s in a `ServiceGroup` of its own, the recorder
/// first, so that it is shut down last and flushes the tape after the last connection ended.
///
/// A deck is a `Service` too, so an application can run it in its own `ServiceGroup` (a Hummingbird or Vapor
/// app, say): start it to learn its addresses, list it before the services that use it, and the group's graceful
/// shutdown stops it after them, draining for ``Options/drainTimeout``. Once the group has finished,
/// ``stop(drainTimeout:)`` returns the outcome of the stop the group made.
///
/// ```swift
/// let deck = try await Deck.start(
///     .record,
///     tape: "fixtures/db.tape",
///     routes: [Route(upstream: try Endpoint(parsing: "127.0.0.1:5432"))]
/// )
/// // `app` talks to deck.address: a Hummingbird `Application`, say.
/// let group = ServiceGroup(
///     services: [deck, app],  // shut down in reverse: the app first, then the deck
///     gracefulShutdownSignals: [.sigterm, .sigint],
///     logger: logger
/// )
/// try await group.run()
/// let outcome = try await deck.stop()  // the group's stop: the tape is complete
/// ```
public final class Deck: Service {
    enum Server: Sendable {
        case relay(ProxyServer)
        case replay(ReplayServer)
        /// With a control API: each route on a server of its own.
        case control(ControlPlane)

        var service: any Service {
            switch self {
            case .relay(let server): server
            case .replay(let server): server
            case .control(let plane): plane
            }
        }
    }

    /// The deck the current task runs inside, set by the `TapedeckTesting` helpers for the code they run.
    @TaskLocal public static var current: Deck?

    /// The mode being served; never ``TapedeckMode/auto``, which is resolved when the deck starts.
    public let mode: TapedeckMode
    /// The tape's path, as given; `nil` for a proxy without a tape.
    public let tapePath: String?
    /// Each route with the address its listener bound, in the order given; with a control API, the routes it
    /// has now, in the order created.
    public var routes: [BoundRoute] {
        if case .control(let plane) = server { return plane.routes }
        return startRoutes
    }
    private let startRoutes: [BoundRoute]
    private let server: Server
    private let recorder: Recorder?
    /// The certificates and contexts of the deck's TLS, when a route or the tape speaks TLS; its CA is what
    /// clients must trust (`tapedeck run` exports it to the command).
    public let tlsContexts: TLSContexts?
    private let replacement: TapeReplacement?
    private let drainTimeout: Duration
    private let lifecycle: Lifecycle<Void, Result<DeckOutcome, any Error>>
    /// The server and the recorder, run by a `ServiceGroup` until the deck stops.
    private let parts: Task<Void, any Error>
    /// The web inspector attached to the deck (``Options/web``), once started.
    private let inspector = NIOLockedValueBox<InspectorServer?>(nil)
    /// The sessions older than `--max-age` that replay found as it started, for its report.
    private let expired = NIOLockedValueBox<[ReplayReport.Expired]>([])

    /// Where the web inspector attached to the deck listens, when it serves one.
    public var webAddress: Endpoint? {
        inspector.withLockedValue { $0?.address }
    }

    init(
        mode: TapedeckMode,
        tapePath: String?,
        routes: [BoundRoute],
        server: Server,
        recorder: Recorder?,
        tlsContexts: TLSContexts?,
        replacement: TapeReplacement?,
        options: Options,
        lifecycle: Lifecycle<Void, Result<DeckOutcome, any Error>>
    ) {
        self.tlsContexts = tlsContexts
        self.mode = mode
        self.tapePath = tapePath
        self.startRoutes = routes
        self.server = server
        self.recorder = recorder
        self.replacement = replacement
        self.drainTimeout = options.drainTimeout
        self.lifecycle = lifecycle
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // First in, last out: a group shuts its services down in reverse order, so the recorder finishes after the
        // listeners closed and the last connection ended, and nothing it should have written comes after it.
        if let recorder { services.append(.init(service: recorder)) }
        // The server's service ends when the deck shuts the server down; the group then shuts the recorder down.
        services.append(.init(service: server.service, successTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services, logger: options.logger))
        // Detached: the parts answer to the deck, not to a graceful shutdown of whatever task started it.
        parts = Task.detached { try await group.run() }
    }

    /// The first route's bound address: the one to use when there is a single route.
    ///
    /// A deck with a control API may start with no route at all (its routes come from the API): asking it for an
    /// address before one exists is a programming error, said as such; use ``address(of:)`` for routes by name.
    public var address: Endpoint {
        let routes = self.routes
        precondition(!routes.isEmpty, "the deck serves no route yet: create one through its control API first")
        return routes[0].address
    }

    /// The bound address of the route called `name`.
    ///
    /// - Throws: ``TapedeckError`` naming the route and the routes there are.
    public func address(of name: String) throws -> Endpoint {
        guard let route = routes.first(where: { $0.name == name }) else {
            throw TapedeckError(
                .invalidArgument,
                "no route '\(name)' (routes: \(routes.map { "'\($0.name)'" }.joined(separator: ", ")))"
            )
        }
        return route.address
    }

    /// What replay has done so far; `nil` when the deck does not replay.
    public var replayReport: ReplayReport? {
        var report: ReplayReport?
        switch server {
        case .replay(let server): report = server.report
        case .control(let plane): report = plane.currentReplayReport
        case .relay: return nil
        }
        report?.expired = expired.withLockedValue { $0 }
        return report
    }

    /// The control plane that holds the routes when the deck serves a control API (``Options/api``).
    public var controlPlane: ControlPlane? {
        guard case .control(let plane) = server else { return nil }
        return plane
    }

    /// Where the control API listens, when the deck serves one.
    public var apiAddress: Endpoint? {
        controlPlane?.apiAddress
    }

    /// Starts serving `routes` in `mode` on the tape at `tape`.
    ///
    /// - Parameters:
    ///   - mode: What to do; ``TapedeckMode/auto`` records when the tape does not exist and replays when it does.
    ///   - tape: The tape file. Recording creates it (mode 0600) and its directory; proxy mode needs none.
    ///   - routes: The routes. Relaying and recording need each route's upstream; replay finds the tape's
    ///     sessions by route name, and a single route named `default` serves a tape whose sessions all belong
    ///     to one route of another name.
    ///   - options: Labels, overwrite, pace and logging.
    /// - Returns: The running deck, with every listener bound.
    /// - Throws: ``TapedeckError`` for bad routes, a missing or unreadable tape, or a listener that cannot bind.
    public static func start(
        _ mode: TapedeckMode,
        tape: String?,
        routes: [Route],
        options: Options = Options()
    ) async throws -> Deck {
        // Expired sessions are found (and, with `--on-expired record`, re-recorded) before replay reads the tape.
        var expired: [ReplayReport.Expired] = []
        let resolved = mode.resolved(forTape: tape)
        if resolved == .replay || resolved == .recordMissing, let expiry = options.expiry, let tape {
            expired = try await expiry.apply(
                tapeAt: tape,
                routes: routes,
                group: options.group,
                warn: { [options] in options.warn($0) }
            )
        }
        let deck = try await startServing(mode, tape: tape, routes: routes, options: options)
        deck.expired.withLockedValue { $0 = expired }
        if let web = options.web {
            do {
                try await deck.attachInspector(on: web, options: options)
            } catch {
                _ = try? await deck.stop(drainTimeout: .zero, keepingRecording: false)
                throw error
            }
        }
        return deck
    }

    /// Serves the web inspector over the deck's tape: the recording while it is written, or the tape replayed
    /// with the replay's report as it grows.
    private func attachInspector(on address: Endpoint, options: Options) async throws {
        guard let tapePath else {
            throw TapedeckError(.invalidArgument, "the web inspector shows a tape: \(mode) mode has none")
        }
        if !address.isLoopback {
            options.warn(
                "the web inspector listens on \(address), beyond loopback: anyone who can reach that address can "
                    + "read the tape"
            )
        }
        let source = InspectorSource(
            liveTapePath: replacement?.recordingPath ?? tapePath,
            mode: mode.description,
            report: { [weak self] in self?.replayReport }
        )
        let server = try await InspectorServer.start(
            source: source,
            address: address,
            eventLoopGroup: options.group,
            logger: options.logger
        )
        inspector.withLockedValue { $0 = server }
    }

    private static func startServing(
        _ mode: TapedeckMode,
        tape: String?,
        routes: [Route],
        options: Options
    ) async throws -> Deck {
        var options = options
        if options.faultPlan != nil, options.faults == nil { options.faults = FaultRegistry() }
        let mode = mode.resolved(forTape: tape)
        // With a control API the routes may all come from it, as with `toxiproxy-server`.
        var routes = routes.isEmpty && options.api != nil ? [] : try ProxyConfiguration(routes: routes).routes
        if mode.needsUpstream {
            let purpose =
                mode == .recordMissing ? "recording missing sessions" : mode == .proxy ? "proxying" : "recording"
            for route in routes { _ = try route.requireUpstream(for: purpose) }
        }
        if let label = options.label, let control = TerminalText.firstControlCharacter(in: label) {
            throw TapedeckError(
                .invalidArgument,
                // TapedeckError escapes the control characters of every message.
                "invalid label '\(label)': it holds the control character \(control); use printable text"
            )
        }
        for route in routes where !route.listen.isLoopback {
            // Tapedeck listens on loopback unless told otherwise; say so every time when told otherwise, since a
            // tape's sessions (and a relay to an internal service) then answer anyone who can reach the address.
            let warning =
                "route '\(route.name)' listens on \(route.listen), beyond loopback: anyone who can reach that "
                + "address is served"
            options.warn(warning)
        }
        for route in routes { try route.tls.validate(route: route.name) }
        let needsTape = TapedeckError(.invalidArgument, "\(mode) mode needs a tape")
        if mode != .proxy, tape == nil { throw needsTape }
        let lifecycle = Lifecycle<Void, Result<DeckOutcome, any Error>>("deck", running: ())
        var replacement: TapeReplacement?
        var recorder: Recorder?
        if mode.writesTape {
            guard let tape else { throw needsTape }
            // Overwriting records beside the old tape and replaces it only once the new recording is complete.
            replacement = mode == .record && options.overwrite ? TapeReplacement(replacing: tape) : nil
            recorder = try makeRecorder(
                tape: tape,
                writingTo: replacement?.recordingPath ?? tape,
                mode: mode,
                routes: routes,
                options: options,
                // A deck run as a service stops once it can no longer record.
                onFailure: { lifecycle.requestStop() }
            )
        }
        do {
            if let api = options.api {
                return try await startControlled(
                    mode,
                    tape: tape,
                    routes: routes,
                    api: api,
                    recorder: recorder,
                    replacement: replacement,
                    options: options,
                    lifecycle: lifecycle
                )
            }
            switch mode {
            case .proxy, .record:
                if let plan = options.faultPlan { try options.faults?.apply(plan, to: routes) }
                let tlsContexts = try routes.contains { $0.tls.mode != .off } ? makeTLSContexts(options) : nil
                let server = ProxyServer(
                    configuration: try ProxyConfiguration(routes: routes),
                    group: options.group,
                    recorder: recorder,
                    drainTimeout: options.drainTimeout,
                    tlsContexts: tlsContexts,
                    faults: options.faults,
                    logger: options.logger
                )
                let bound = try await server.start()
                return Deck(
                    mode: mode,
                    tapePath: tape,
                    routes: bound,
                    server: .relay(server),
                    recorder: recorder,
                    tlsContexts: tlsContexts,
                    replacement: replacement,
                    options: options,
                    lifecycle: lifecycle
                )
            case .replay, .recordMissing, .auto:
                guard let tape else { throw needsTape }
                let reading = try Tape(readingAt: tape)
                routes = try servedRoutes(routes, in: reading)
                if let plan = options.faultPlan { try options.faults?.apply(plan, to: routes) }
                if mode == .recordMissing, let route = routes.first(where: \.isDatagram) {
                    throw TapedeckError(
                        .invalidArgument,
                        "route '\(route.name)' is UDP, whose missing flows replay cannot record; record them with "
                            + "`tapedeck record`"
                    )
                }
                var replayOptions = ReplayServer.Options(
                    pace: options.pace,
                    repeatSessions: options.repeatSessions,
                    secrets: options.secrets,
                    faults: options.faults
                )
                replayOptions.recordMissing = recorder.map(MissingSessionRecording.init(recorder:))
                let tlsProfiles = try reading.replayTLS()
                let tlsContexts =
                    try !tlsProfiles.isEmpty || routes.contains { $0.tls.mode != .off } ? makeTLSContexts(options) : nil
                replayOptions.tls = tlsContexts.map { ReplayServer.TLS(contexts: $0, profiles: tlsProfiles) }
                let server = try ReplayServer(
                    tape: reading,
                    routes: routes,
                    options: replayOptions,
                    group: options.group,
                    drainTimeout: options.drainTimeout,
                    logger: options.logger
                )
                let bound = try await server.start()
                return Deck(
                    mode: mode,
                    tapePath: tape,
                    routes: bound,
                    server: .replay(server),
                    recorder: recorder,
                    tlsContexts: tlsContexts,
                    replacement: nil,
                    options: options,
                    lifecycle: lifecycle
                )
            }
        } catch {
            try? await recorder?.finish()
            replacement?.discard()
            throw error
        }
    }

    /// Stops accepting, lets open connections finish for up to `drainTimeout` and resets the rest, then flushes
    /// and closes the tape when recording.
    ///
    /// Only the first call stops the deck; later ones wait for it and return (or throw) what it did.
    ///
    /// - Returns: What the deck did, with the replay report when it replayed.
    /// - Throws: ``TapedeckError`` with code `recordingFailed` if any part of the recording could not be written.
    @discardableResult
    public func stop(drainTimeout: Duration = .seconds(5)) async throws -> DeckOutcome {
        try await stopping(drainTimeout: drainTimeout, keepingRecording: true).get()
    }

    /// Stops like ``stop(drainTimeout:)``; with `keepingRecording` false, a tape being re-recorded keeps its
    /// old contents, for a run whose command never started.
    func stop(drainTimeout: Duration, keepingRecording: Bool) async throws -> DeckOutcome {
        try await stopping(drainTimeout: drainTimeout, keepingRecording: keepingRecording).get()
    }

    /// Serves until a graceful shutdown, task cancellation or a failed recording, then stops: draining for
    /// ``Options/drainTimeout`` after a graceful shutdown, at once after cancellation or when the tape could not
    /// be written.
    ///
    /// Returns once the deck has stopped, however that came about (a ``stop(drainTimeout:)`` call ends it too);
    /// ``stop(drainTimeout:)`` then returns the outcome.
    ///
    /// - Throws: What ``stop(drainTimeout:)`` throws, or ``TapedeckError`` if another `run()` is serving the deck.
    public func run() async throws {
        _ = try await lifecycle.run(start: {}) { cancelled in
            let drainTimeout = cancelled || self.recorder?.failure != nil ? .zero : self.drainTimeout
            return await self.stopping(drainTimeout: drainTimeout, keepingRecording: true)
        }.get()
    }

    private func stopping(drainTimeout: Duration, keepingRecording: Bool) async -> Result<DeckOutcome, any Error> {
        await lifecycle.stop { _ in
            do {
                return .success(try await stopParts(drainTimeout: drainTimeout, keepingRecording: keepingRecording))
            } catch {
                return .failure(error)
            }
        }
    }

    private func stopParts(drainTimeout: Duration, keepingRecording: Bool) async throws -> DeckOutcome {
        // The inspector reads the tape: it lets go of it before the recorder finishes, which wants the tape to
        // itself to leave it as one plain file.
        if let server = inspector.withLockedValue({ $0 }) { await server.stop() }
        var outcome = DeckOutcome(mode: mode, routes: routes)
        var planeRecording: TapedeckError?
        // Shutting the server down ends its service, and the group then shuts the recorder down.
        switch server {
        case .relay(let server):
            outcome.interruptedConnections = await server.shutdown(drainTimeout: drainTimeout).interruptedConnections
        case .replay(let server):
            outcome.replay = await server.shutdown(drainTimeout: drainTimeout)
        case .control(let plane):
            let stopped = await plane.shutdown(drainTimeout: drainTimeout)
            outcome.interruptedConnections = stopped.interruptedConnections
            outcome.replay = stopped.replay ?? (mode == .replay || mode == .recordMissing ? ReplayReport() : nil)
            outcome.recordedSessions = stopped.recordedSessions
            planeRecording = stopped.recordingError
        }
        outcome.replay?.expired = expired.withLockedValue { $0 }
        // The listeners are closed and the connections gone: nothing else will be recorded, so the recorder has
        // flushed last once the group is done; a recording that could not be written is the group's error.
        try await parts.value
        if let planeRecording { throw planeRecording }
        if let recorder {
            do {
                outcome.recordedSessions += try recorder.sessionCount()
                // The deck may outlive its stop (a test case object keeps it); the tape must be one closed file now.
                try recorder.tape.close()
            } catch let error as TapedeckError {
                // The writer had no complaint, yet the tape cannot be read back or closed (removed under us, say):
                // a failure of the recording, whichever step found it.
                throw TapedeckError(.recordingFailed, error.message + "; the recording is incomplete")
            }
            if keepingRecording {
                try replacement?.commit()
            } else {
                replacement?.discard()
            }
        }
        return outcome
    }

    // MARK: Opening the tape

    static func makeRecorder(
        tape: String,
        writingTo path: String,
        mode: TapedeckMode,
        routes: [Route],
        options: Options,
        onFailure: @escaping @Sendable () -> Void
    ) throws -> Recorder {
        let directory = (tape as NSString).deletingLastPathComponent
        if !directory.isEmpty, !FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw TapedeckError(
                    .tapeUnwritable,
                    "cannot create tape '\(tape)': cannot create its directory '\(directory)'"
                )
            }
        }
        let writable = try Tape(recordingAt: path, overwrite: options.overwrite && mode == .record)
        let logger = options.logger
        let report = options.onRecordingFailure
        return try Recorder(
            tape: writable,
            routes: routes,
            label: options.label,
            mode: mode == .record ? "record" : "replay"
        ) { error in
            onFailure()
            // One report of a failure: to the caller who asked for it, else to the log.
            guard let report else {
                logger.error(
                    "recording failed",
                    metadata: ["tapedeck.tape": "\(tape)", "tapedeck.error": "\(error.message)"]
                )
                return
            }
            report(error)
        }
    }

    /// The deck's TLS contexts, with its CA loaded (or created) now, so that a CA that cannot be read is one error
    /// at start rather than one per connection.
    static func makeTLSContexts(_ options: Options) throws -> TLSContexts {
        let contexts = TLSContexts(
            authorityDirectory: options.certificateAuthorityDirectory ?? CertificateAuthority.defaultDirectory()
        )
        _ = try contexts.certificateAuthority()
        return contexts
    }

    /// A single route left with the default name serves the tape's only route, whatever it was called.
    static func servedRoutes(_ routes: [Route], in tape: Tape) throws -> [Route] {
        var routes = routes
        if routes.count == 1, routes[0].name == Route.defaultName {
            let names = try ReplayServer.routeNames(in: tape)
            if names.count == 1, names[0] != Route.defaultName { routes[0].name = names[0] }
        }
        // The tape remembers each route's transport and whether it carried DNS, so replay needs neither flag.
        for index in routes.indices {
            guard let recorded = try tape.recordedTransport(ofRoute: routes[index].name) else { continue }
            if recorded.isDNS { routes[index].dns = true }
            // A lens named at replay wins over the one the tape was recorded with.
            if routes[index].lens == .auto { routes[index].lens = recorded.lens }
            let route = routes[index]
            if recorded.isDatagram, !route.isDatagram {
                guard case .tcp = route.listen else {
                    throw TapedeckError(
                        .invalidArgument,
                        "route '\(route.name)' was recorded over UDP; replay it on udp:HOST:PORT, not \(route.listen)"
                    )
                }
                routes[index].listen = route.listen.asDatagram
                routes[index].upstream = route.upstream?.asDatagram
            } else if !recorded.isDatagram, route.isDatagram {
                throw TapedeckError(
                    .invalidArgument,
                    "route '\(route.name)' was recorded over a stream; replay it on HOST:PORT, not \(route.listen)"
                )
            }
        }
        return routes
    }
}
