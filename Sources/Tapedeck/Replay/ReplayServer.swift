import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// Serves recorded sessions back to clients, with no upstream at all.
///
/// Each route listens on its own address and serves the sessions recorded for the route of the same name.
/// Start it, point the client under test at the bound address, and read the report after shutdown. It starts
/// once: a second ``start()`` throws, and a second ``shutdown(drainTimeout:)`` returns the first one's report.
///
/// ```swift
/// let server = try ReplayServer(
///     tape: try Tape(readingAt: "fixtures/redis.tape"),
///     routes: [Route(name: "default")]
/// )
/// let address = try await server.start()[0].address
/// // … run the client against `address` …
/// let report = await server.shutdown()
/// #expect(report.mismatches.isEmpty)
/// ```
///
/// It is also a `Service`: in a `ServiceGroup`, ``run()`` starts it (unless started), and a graceful shutdown
/// shuts it down with the drain timeout it was made with; cancellation resets open connections at once.
public final class ReplayServer: Service {
    /// How sessions are chosen and played.
    public struct Options: Sendable {
        /// How fast the upstream's part is played.
        public var pace: ReplayPace
        /// Whether a recorded session may serve more than one connection.
        public var repeatSessions: Bool
        /// When set, a connection no recorded session matches is relayed to the real upstream and recorded.
        public var recordMissing: MissingSessionRecording?
        /// Secrets by name: what a redacted upstream span whose rule names one is replayed as, and the password a
        /// SCRAM login needs (`postgres-password`).
        public var secrets: [String: String]
        /// Where replay gets certificates for routes whose recorded clients spoke TLS, and what they spoke.
        public var tls: TLS?
        /// The toxics of the routes; with them, every connection gets a fault stage that applies them.
        public var faults: FaultRegistry?

        /// Creates options; by default no waits, each session replayed at most once, nothing recorded, no secrets.
        public init(
            pace: ReplayPace = .fast,
            repeatSessions: Bool = false,
            recordMissing: MissingSessionRecording? = nil,
            secrets: [String: String] = [:],
            faults: FaultRegistry? = nil
        ) {
            self.faults = faults
            self.pace = pace
            self.repeatSessions = repeatSessions
            self.recordMissing = recordMissing
            self.secrets = secrets
        }
    }

    /// The TLS replay serves: the deck's contexts, and per route what its recorded clients spoke.
    public struct TLS: Sendable {
        var contexts: TLSContexts
        var profiles: [String: ReplayTLSProfile]
    }

    private struct ServedRoute: Sendable {
        var route: Route
        var catalog: SessionCatalog
        /// The rules replay applies to the route's clients: the tape's, then those given with the route.
        var clientRules: ListenRulesCache
        /// A UDP route's recorded flows.
        var datagrams: DatagramReplayBook?
        /// A DNS route over TCP: its recorded queries and answers, message by message.
        var dnsStreams: DatagramReplayBook?
        /// The protocol lens the route's sessions go through, resolved from the route's choice and the tape.
        var lens: ProtocolLens = .raw
        /// A route served through the HTTP/2 lens: its recorded streams.
        var http2: HTTP2ReplayBook?
    }

    private let served: [ServedRoute]
    private let payloads: UpstreamPayloadSource
    private let options: Options
    private let group: any EventLoopGroup
    private let logger: Logger
    private let drainTimeout: Duration
    private let ledger = ReplayLedger()
    private let tracker = ConnectionTracker()
    /// A server starts once, so that a second start cannot bind listeners again and lose the first ones.
    private let lifecycle = Lifecycle<Listener.Bound, ReplayReport>("replay server")

    /// Loads the sessions each route will serve.
    ///
    /// - Parameters:
    ///   - tape: The tape to serve.
    ///   - routes: Where to listen for each of the tape's routes, found by name. A route's upstream is used only
    ///     to record missing sessions.
    ///   - options: Pace and reuse.
    ///   - group: The event loops to serve on; defaults to one thread per core.
    ///   - drainTimeout: How long open connections may go on when a graceful shutdown stops ``run()``.
    ///   - logger: Where mismatches and connection problems are reported.
    /// - Throws: ``TapedeckError`` if a route is not in the tape or the tape cannot be read.
    public convenience init(
        tape: Tape,
        routes: [Route],
        options: Options = Options(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        drainTimeout: Duration = .seconds(5),
        logger: Logger = Logger(label: "tapedeck.replay")
    ) throws {
        try self.init(
            tape: tape,
            routes: routes,
            options: options,
            group: group,
            drainTimeout: drainTimeout,
            logger: logger,
            inlineUpstreamBudget: Self.inlineUpstreamBudget
        )
    }

    /// Loads the sessions each route will serve, holding at most `inlineUpstreamBudget` upstream bytes in memory.
    init(
        tape: Tape,
        routes: [Route],
        options: Options,
        group: any EventLoopGroup,
        drainTimeout: Duration = .seconds(5),
        logger: Logger,
        inlineUpstreamBudget: Int,
        extraTapeReaders: Int = ReplayServer.extraTapeReaders
    ) throws {
        var rulesOfRoute: [String: [Rule]] = [:]
        // Given the password, a SCRAM login replays even from a tape recorded without the preset: its volatile
        // rules (the client's nonce and proof, nothing else) apply as if it had been.
        let scram =
            options.secrets[RulePreset.postgresPasswordSecret] == nil
            ? [] : RulePreset.postgresPassword.rules.filter { $0.kind == .volatile }
        for route in routes {
            rulesOfRoute[route.name] = (try tape.rules(ofRoute: route.name) + route.rules + scram).uniqued()
        }
        // Routes whose lens is named are built through it at once. The others are recognized from the scripts
        // built without one, which reading the tape gives anyway: a route that needs no lens costs no second
        // read, and one that does is built again through it.
        var lenses: [String: ProtocolLens] = [:]
        for route in routes where !route.isDatagram && !route.isDNS && route.lens != .auto {
            lenses[route.name] = route.lens
        }
        var recorded = try tape.replayScripts(
            inlineBudget: inlineUpstreamBudget,
            rules: rulesOfRoute,
            lenses: lenses
        )
        var rebuild: [String: ProtocolLens] = [:]
        for route in routes where !route.isDatagram && !route.isDNS && route.lens == .auto {
            let lens = LensRecognizer.resolve(.auto, openings: (recorded[route.name] ?? []).map(\.opening))
            lenses[route.name] = lens
            if LensRecognizer.makeStreamLens(lens) != nil { rebuild[route.name] = lens }
        }
        if !rebuild.isEmpty {
            let rebuilt = try tape.replayScripts(
                inlineBudget: inlineUpstreamBudget,
                rules: rulesOfRoute,
                lenses: rebuild,
                only: Set(rebuild.keys)
            )
            for (route, scripts) in rebuilt { recorded[route] = scripts }
        }
        // A tape whose upstream bytes all fit in memory is never read while replaying: opening (and checking)
        // more connections to it would only cost time at start.
        let anyStored = recorded.values.contains { $0.contains(where: \.hasStoredSends) }
        let payloads = UpstreamPayloadSource(tape: tape, extraReaders: anyStored ? extraTapeReaders : 0)
        var served: [ServedRoute] = []
        for route in routes {
            if route.isDatagram {
                guard try tape.recordedTransport(ofRoute: route.name) != nil else {
                    throw TapedeckError(.invalidArgument, "tape '\(tape.path)' has no route '\(route.name)'")
                }
                let rules = try CompiledRules(rulesOfRoute[route.name] ?? [], direction: .clientToUpstream)
                served.append(
                    ServedRoute(
                        route: route,
                        catalog: SessionCatalog(scripts: [], repeatable: options.repeatSessions, payloads: payloads),
                        clientRules: ListenRulesCache(rules),
                        datagrams: DatagramReplayBook(
                            route: route.name,
                            flows: try tape.recordedFlows(ofRoute: route.name, rules: rules),
                            rules: rules,
                            isDNS: route.isDNS
                        )
                    )
                )
                continue
            }
            if route.isDNS, options.recordMissing == nil, recorded[route.name] != nil {
                // DNS over TCP: queries are answered by question, whichever connection recorded them.
                served.append(
                    ServedRoute(
                        route: route,
                        catalog: SessionCatalog(scripts: [], repeatable: options.repeatSessions, payloads: payloads),
                        clientRules: ListenRulesCache(try CompiledRules([], direction: .clientToUpstream)),
                        dnsStreams: DatagramReplayBook(
                            route: route.name,
                            flows: try tape.recordedDNSStreams(ofRoute: route.name),
                            rules: try CompiledRules([], direction: .clientToUpstream),
                            isDNS: true
                        )
                    )
                )
                continue
            }
            guard let scripts = recorded[route.name] ?? (options.recordMissing != nil ? [] : nil) else {
                let known = recorded.keys.sorted().map { "'\($0)'" }.joined(separator: ", ")
                throw TapedeckError(
                    .invalidArgument,
                    "tape '\(tape.path)' has no route '\(route.name)'"
                        + (known.isEmpty ? " (it has no sessions)" : " (it has \(known))")
                )
            }
            served.append(
                ServedRoute(
                    route: route,
                    catalog: SessionCatalog(
                        scripts: scripts,
                        repeatable: options.repeatSessions,
                        payloads: payloads
                    ),
                    clientRules: ListenRulesCache(
                        try CompiledRules(rulesOfRoute[route.name] ?? [], direction: .clientToUpstream)
                    ),
                    lens: lenses[route.name] ?? .raw,
                    http2: lenses[route.name] == .http2
                        ? HTTP2ReplayBook(
                            route: route.name,
                            sessions: try tape.recordedHTTP2Sessions(ofRoute: route.name),
                            repeatable: options.repeatSessions
                        ) : nil
                )
            )
        }
        self.served = served
        self.payloads = payloads
        self.options = options
        self.group = group
        self.drainTimeout = drainTimeout
        self.logger = logger
    }

    /// How many upstream bytes replay holds in memory, over all sessions; the rest are read from the tape when
    /// they are due. Request-response tapes fit whole; a bulk transfer streams from the tape.
    static let inlineUpstreamBudget = 32 * 1024 * 1024

    /// Read-only connections replay opens to its tape besides the tape's own, so that bulk replies are read side
    /// by side.
    static let extraTapeReaders = 1

    /// The names of the routes a tape holds sessions for, in the order first recorded.
    public static func routeNames(in tape: Tape) throws -> [String] {
        try tape.sessionRouteNames()
    }

    /// Binds every route's listener and starts serving.
    ///
    /// - Throws: ``TapedeckError`` if a listener cannot bind, or if the server was started before.
    @discardableResult
    public func start() async throws -> [BoundRoute] {
        try await lifecycle.start(bind).bound
    }

    /// Starts serving unless ``start()`` did, serves until a graceful shutdown or task cancellation, then shuts
    /// down: draining for the server's drain timeout after a graceful shutdown, at once after cancellation.
    ///
    /// Returns once shut down, however that came about (a ``shutdown(drainTimeout:)`` call ends it too); the
    /// report is then ``report``.
    ///
    /// - Throws: ``TapedeckError`` if a listener cannot bind, or if another `run()` is serving this server.
    public func run() async throws {
        _ = try await lifecycle.run(start: bind) { cancelled in
            await self.shutdown(drainTimeout: cancelled ? .zero : self.drainTimeout)
        }
    }

    /// Binds every route's listener, all or none.
    private func bind() async throws -> Listener.Bound {
        let datagramSettings = served.map { entry in
            entry.datagrams.map { book in
                DatagramReplayHandler.Settings(
                    route: entry.route,
                    book: book,
                    ledger: ledger,
                    pace: options.pace,
                    logger: logger,
                    faults: options.faults?.faults(for: entry.route)
                )
            }
        }
        let started = try await Listener.bindAll(
            served.map(\.route),
            group: group,
            logger: logger,
            makeDatagramHandler: { index, loop in
                // Only UDP routes reach here, and each has its book.
                DatagramReplayHandler(settings: datagramSettings[index]!, eventLoop: loop)
            }
        ) { index, loop in
            let entry = served[index]
            // Options set synchronously, not as child options (see ProxyServer); TCP_NODELAY is inherited from
            // the listener.
            return ServerBootstrap(group: loop, childGroup: loop)
                .childChannelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.syncOptions?.setOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                        tracker.track(channel)
                        // Toxics apply to the client's plain bytes: behind TLS, in front of replay.
                        var faultStages: [any ChannelHandler] = []
                        if let routeFaults = options.faults?.faults(for: entry.route) {
                            guard routeFaults.isUp else {
                                return try channel.pipeline.syncOperations.addHandler(
                                    FaultConversation.refusal(for: channel)
                                )
                            }
                            faultStages = FaultConversation.replayStages(
                                faults: routeFaults,
                                client: channel,
                                logger: logger
                            )
                        }
                        if let book = entry.dnsStreams {
                            try channel.pipeline.syncOperations.addHandlers(faultStages)
                            try channel.pipeline.syncOperations.addHandler(
                                DNSStreamReplayHandler(
                                    route: entry.route.name,
                                    book: book,
                                    ledger: ledger,
                                    logger: logger
                                )
                            )
                            return
                        }
                        var handoff: MissingSessionHandoff?
                        if let recording = options.recordMissing, let upstream = entry.route.upstream {
                            handoff = MissingSessionHandoff(
                                route: entry.route,
                                upstream: upstream,
                                recorder: recording.recorder,
                                tracker: tracker
                            )
                        }
                        if let tls = options.tls, let profile = tls.profiles[entry.route.name] {
                            try channel.pipeline.syncOperations.addHandler(
                                ReplayTLSGate(
                                    route: entry.route,
                                    profile: profile,
                                    contexts: tls.contexts,
                                    logger: logger
                                )
                            )
                        }
                        try channel.pipeline.syncOperations.addHandlers(faultStages)
                        let makeReplayHandler: @Sendable () -> ReplayHandler = { [self, handoff] in
                            ReplayHandler(
                                matcher: ReplayMatcher(catalog: entry.catalog, pace: options.pace),
                                route: entry.route.name,
                                ledger: ledger,
                                logger: logger,
                                missing: handoff,
                                payloads: payloads,
                                clientRules: entry.clientRules,
                                secrets: options.secrets,
                                lens: LensRecognizer.makeStreamLens(entry.lens)
                            )
                        }
                        guard let book = entry.http2 else {
                            return try channel.pipeline.syncOperations.addHandler(makeReplayHandler())
                        }
                        // HTTP/2 through its lens; any other client of the route byte for byte.
                        try channel.pipeline.syncOperations.addHandler(
                            HTTP2PrefaceGate(
                                settings: .init(
                                    route: entry.route.name,
                                    book: book,
                                    ledger: ledger,
                                    logger: logger,
                                    makeFallback: makeReplayHandler
                                )
                            )
                        )
                    }
                }
        }
        for (entry, route) in zip(served, started.bound) {
            logger.info(
                "replaying",
                metadata: [
                    "tapedeck.route": "\(route.name)", "tapedeck.address": "\(route.address)",
                    "tapedeck.sessions":
                        "\((entry.datagrams ?? entry.dnsStreams)?.flows.count ?? entry.catalog.index.scripts.count)",
                ]
            )
        }
        options.recordMissing?.recorder.routesBound(started.bound)
        return started
    }

    /// The report so far: connections served, mismatches, and sessions not (yet) replayed, or replayed in part.
    public var report: ReplayReport {
        var report = ledger.snapshot(
            unused: served.flatMap { entry in
                let http2 = Self.http2SessionIDs(entry.http2)
                let unused =
                    (entry.datagrams ?? entry.dnsStreams)?.unusedSessionIDs
                    ?? (entry.catalog.unusedSessionIDs.filter { !http2.contains($0) }
                    + (entry.http2?.unusedSessionIDs ?? [])).sorted()
                return unused.map { ReplayReport.Unused(route: entry.route.name, session: $0) }
            },
            incomplete: served.flatMap { entry in
                let http2 = Self.http2SessionIDs(entry.http2)
                let incomplete =
                    entry.catalog.incompleteSessions.filter { !http2.contains($0.session) }
                    .map { (session: $0.session, offset: $0.offset) } + (entry.http2?.incompleteSessions ?? [])
                return incomplete.map {
                    ReplayReport.Incomplete(route: entry.route.name, session: $0.session, offset: $0.offset)
                }
            }
        )
        let names = Set(served.map(\.route.name))
        report.faults = options.faults?.log.fired.filter { names.contains($0.route) } ?? []
        return report
    }

    /// Stops accepting, lets open connections finish for up to `drainTimeout`, resets the rest, and returns
    /// the final report.
    ///
    /// Safe to call more than once and before ``start()``: only the first call shuts down, and every call returns
    /// its report.
    @discardableResult
    public func shutdown(drainTimeout: Duration = .seconds(5)) async -> ReplayReport {
        await lifecycle.stop { started in
            // UDP listeners first answer what the kernel already queued for them.
            await Listener.drainDatagrams(started?.listeners ?? [], timeout: drainTimeout)
            await Listener.close(started?.listeners ?? [], routes: served.map(\.route))
            _ = await tracker.drain(timeout: drainTimeout)
            payloads.close()
            return report
        }
    }
}

extension Tape {
    /// Every session as a replay script, grouped by route, in recording order. One pass over the events; upstream
    /// payloads beyond `inlineBudget` bytes in all stay in the tape.
    ///
    /// - Parameter rules: Each route's rules, as replay applies them (the tape's and those given at replay): the
    ///   client's streams are normalized with them, with the placeholders the recorder wrote, and with the address
    ///   each run's listener was bound to.
    /// - Parameters:
    ///   - lenses: The protocol lens of each route (see ``LensRecognizer``): the client streams of a route with a
    ///     byte-stream lens are compared in its canonical form.
    ///   - only: The routes to build scripts for; all when nil.
    func replayScripts(
        inlineBudget: Int = .max,
        rules: [String: [Rule]] = [:],
        lenses: [String: ProtocolLens] = [:],
        only: Set<String>? = nil
    ) throws -> [String: [ReplayScript]] {
        let sessions = try sessionRoutes()
        var routeOf: [Int64: String] = [:]
        for session in sessions { routeOf[session.id] = session.route }
        // Where each run's listener was bound, to normalize the address clients wrote into their bytes.
        var listenOfRoute: [Int64: Endpoint] = [:]
        for route in try routes() {
            if let id = route.id, let endpoint = try? Endpoint(parsing: route.listen) { listenOfRoute[id] = endpoint }
        }
        // Rules compiled once for each route and listen address.
        var compiled: [String: CompiledRules] = [:]
        func clientRules(route: String, listen: Endpoint?) throws -> CompiledRules {
            let key = "\(route)\u{0}\(listen.map { "\($0)" } ?? "")"
            if let rules = compiled[key] { return rules }
            let made = try CompiledRules(
                rules[route] ?? [],
                direction: .clientToUpstream,
                listen: listen.flatMap(ListenAddressText.init)
            )
            compiled[key] = made
            return made
        }
        var listenOfSession: [Int64: Endpoint] = [:]
        for session in sessions { listenOfSession[session.id] = listenOfRoute[session.routeID] }
        let redactions = try self.redactions()
        let secretOfRule = Dictionary(
            try storedRules().compactMap { stored in stored.rule.secret.map { (stored.id, $0) } },
            uniquingKeysWith: { first, _ in first }
        )
        var byRoute: [String: [ReplayScript]] = [:]
        var current: (id: Int64, events: [IndexedEvent])?
        func flush() throws {
            guard let current, let route = routeOf[current.id], only?.contains(route) ?? true else { return }
            var scriptRules = ReplayScript.Rules(
                client: try clientRules(route: route, listen: listenOfSession[current.id])
            )
            for redaction in redactions[current.id] ?? [] {
                let range = redaction.start..<(redaction.start + redaction.length)
                scriptRules.clientRedactions[redaction.seq, default: []].append(range)
                if let secret = secretOfRule[redaction.ruleID] {
                    scriptRules.upstreamSecrets[redaction.seq, default: []].append((range, secret))
                }
            }
            byRoute[route, default: []].append(
                ReplayScript(
                    sessionID: current.id,
                    indexed: current.events,
                    rules: scriptRules,
                    lens: lenses[route].flatMap(LensRecognizer.makeStreamLens)
                )
            )
        }
        var seen = Set<Int64>()
        try forEachIndexedEvent(inlineBudget: inlineBudget) { event in
            if current?.id != event.sessionID {
                try flush()
                current = (event.sessionID, [])
                seen.insert(event.sessionID)
            }
            current!.events.append(event)
        }
        try flush()
        // Sessions without events (a client that connected and left at once) replay as empty sessions.
        for session in sessions where !seen.contains(session.id) && only?.contains(session.route) ?? true {
            byRoute[session.route, default: []].append(ReplayScript(sessionID: session.id, events: []))
        }
        for route in byRoute.keys { byRoute[route]!.sort { $0.sessionID < $1.sessionID } }
        return byRoute
    }
}
