import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// A deck's routes held one by one, so that the control API can create, delete, disable, enable and switch them
/// while the deck runs.
///
/// Each route has a server of its own: a ``ProxyServer`` to proxy (or record, with the deck's recorder), a
/// ``ReplayServer`` to replay. A route that is disabled (`enabled: false`, or a `down` toxic) has no server at all:
/// its listener is closed, so new connections are refused, and its open connections were reset. Enabling it binds
/// the same address again, port included, as Toxiproxy does. A deck without `--api` has no control plane and
/// serves its routes from one server, as it always did.
///
/// Every change goes through one gate, one at a time, so two requests never bind the same route twice.
///
/// It is a `Service`: its deck runs it until a graceful shutdown, task cancellation or ``shutdown(drainTimeout:)``.
public actor ControlPlane: Service {
    /// What the plane needs from its deck.
    struct Settings: Sendable {
        /// The deck's mode: the mode each route starts in.
        var mode: TapedeckMode
        /// The deck's tape, for routes that record or replay.
        var tapePath: String?
        /// The deck's recorder, when the deck records; the routes it was made with are ``recordedRoutes``.
        var recorder: Recorder?
        /// The routes the deck's recorder has rows for.
        var recordedRoutes: [Route] = []
        /// Makes a recorder on the deck's tape for a route switched to record on a deck that does not record.
        var makeRecorder: (@Sendable () throws -> Recorder)?
        /// The deck's options: event loops, logger, replay pace and secrets, warnings.
        var options: Deck.Options
        /// The toxics of every route.
        var faults: FaultRegistry
        /// The deck's TLS contexts, when it speaks TLS.
        var tlsContexts: TLSContexts?
    }

    /// The kind of server a route has while it is up.
    enum RouteServer: Sendable {
        case relay(ProxyServer)
        case replay(ReplayServer, known: Set<Int64>)
    }

    /// One route and what serves it.
    struct Served: Sendable {
        var route: Route
        var mode: TapedeckMode
        var faults: RouteFaults
        var observer: Int
        var server: RouteServer?
    }

    let settings: Settings
    var served: [String: Served] = [:]
    /// Route names in the order they were created.
    var order: [String] = []
    /// The reports of replay servers that stopped (a route disabled, switched or deleted).
    var finishedReplays: [ReplayIncarnation] = []
    /// A recorder the plane made for routes switched to record; finished when the plane shuts down.
    var ownRecorder: Recorder?
    /// Each route the recorder in use has a row for, as it was when written (its listen address aside).
    private var recordedRoutes: [String: Route]
    private var gateBusy = false
    private var gateWaiters: [CheckedContinuation<Void, Never>] = []
    var isShutDown = false
    /// The routes and their addresses, readable without waiting for the actor.
    private let published = NIOLockedValueBox([BoundRoute]())
    private let modes = NIOLockedValueBox([String: TapedeckMode]())
    /// The replay servers, running and finished, for a report read without waiting for the actor.
    private let replays = NIOLockedValueBox(
        (running: [(name: String, server: ReplayServer, known: Set<Int64>)](), finished: [ReplayIncarnation]())
    )
    /// The control API's server, once it serves.
    var apiServer: HTTPService?
    private let apiEndpoint = NIOLockedValueBox<Endpoint?>(nil)
    let lifecycle = Lifecycle<Void, Outcome>("control plane", running: ())

    init(settings: Settings) {
        self.settings = settings
        var recorded: [String: Route] = [:]
        for route in settings.recordedRoutes { recorded[route.name] = Self.recordingKey(route) }
        recordedRoutes = recorded
    }

    // MARK: Reading

    /// Every route with the address it is (or was last) bound to, in the order created.
    public nonisolated var routes: [BoundRoute] {
        published.withLockedValue { $0 }
    }

    /// Each route's mode now.
    public nonisolated var routeModes: [String: TapedeckMode] {
        modes.withLockedValue { $0 }
    }

    /// The address the control API is bound to, once it serves.
    public nonisolated var apiAddress: Endpoint? {
        apiEndpoint.withLockedValue { $0 }
    }

    /// The replay report so far, of every replay server the routes had; `nil` when no route replayed.
    public nonisolated var currentReplayReport: ReplayReport? {
        let (running, finished) = replays.withLockedValue { ($0.running, $0.finished) }
        let parts =
            finished + running.map { ReplayIncarnation(route: $0.name, report: $0.server.report, known: $0.known) }
        return parts.isEmpty ? nil : ReplayReport.merged(parts)
    }

    /// Serves the control API on `address`, once.
    ///
    /// - Returns: The address it bound (port 0 replaced).
    /// - Throws: ``TapedeckError`` with code `listenFailed` when it cannot bind.
    func serveAPI(on address: Endpoint) async throws -> Endpoint {
        let server = try await ControlServer.start(
            plane: self,
            address: address,
            eventLoopGroup: settings.options.group,
            logger: settings.options.logger
        )
        apiServer = server
        apiEndpoint.withLockedValue { $0 = server.address }
        return server.address
    }

    /// Serves until a graceful shutdown or task cancellation (or ``shutdown(drainTimeout:)``), then shuts down:
    /// draining for the deck's drain timeout after a graceful shutdown, at once after cancellation.
    public nonisolated func run() async throws {
        _ = try await lifecycle.run(
            start: {},
            stop: { cancelled in
                // Through shutdown, so that a stop the deck began is joined rather than done twice.
                await self.shutdown(drainTimeout: cancelled ? .zero : self.settings.options.drainTimeout)
            }
        )
    }

    /// Stops the API, then every route (see ``stopEverything(drainTimeout:)``); only the first call does, and
    /// every call returns its outcome.
    nonisolated func shutdown(drainTimeout: Duration) async -> Outcome {
        await lifecycle.stop { _ in await self.stopEverything(drainTimeout: drainTimeout) }
    }

    /// The routes as the control API shows them, in the order created.
    func proxies() -> [ProxyState] {
        order.compactMap { served[$0].map(Self.state) }
    }

    /// The route called `name`, as the control API shows it.
    ///
    /// - Throws: ``ControlError`` (404) when there is none.
    func proxy(named name: String) throws -> ProxyState {
        guard let entry = served[name] else { throw ControlError.proxyNotFound(name) }
        return Self.state(entry)
    }

    /// The toxics of the route called `name`.
    ///
    /// - Throws: ``ControlError`` (404) when there is no such route.
    func faults(of name: String) throws -> RouteFaults {
        guard let entry = served[name] else { throw ControlError.proxyNotFound(name) }
        return entry.faults
    }

    private static func state(_ entry: Served) -> ProxyState {
        ProxyState(
            name: entry.route.name,
            listen: "\(entry.route.listen)",
            upstream: entry.route.upstreamText,
            enabled: entry.faults.isEnabled,
            toxics: entry.faults.toxics
        )
    }

    // MARK: Changing

    /// Adds `routes` in the deck's mode and binds them, all or none.
    ///
    /// - Returns: The routes with their bound addresses.
    /// - Throws: What binding the first route that failed threw; the ones bound before are closed again.
    func start(_ routes: [Route]) async throws -> [BoundRoute] {
        try await serialized {
            do {
                for route in routes { try await add(route, mode: settings.mode, enabled: true) }
            } catch {
                for route in routes { await remove(route.name) }
                throw error
            }
            return self.routes
        }
    }

    /// Creates a route, as `POST /proxies` does.
    ///
    /// - Throws: ``ControlError``: 409 when the name is taken, 400 for a bad route, 500 when it cannot bind.
    func create(_ route: Route, enabled: Bool) async throws -> ProxyState {
        try await serialized {
            guard served[route.name] == nil else {
                throw ControlError(.conflict, "proxy already exists: \(route.name)")
            }
            try await add(route, mode: settings.mode, enabled: enabled)
            return try proxy(named: route.name)
        }
    }

    /// Creates the routes that do not exist and replaces those whose listen address or upstream differ, as
    /// `POST /populate` does; a route that exists as given is kept as it is.
    ///
    /// - Returns: The routes done, in the order given, and the refusal of the first that failed, if one did: the
    ///   routes before it stay as done, as in Toxiproxy.
    func populate(_ routes: [(route: Route, enabled: Bool)]) async -> (proxies: [ProxyState], error: ControlError?) {
        let outcome = try? await serialized { () -> ([ProxyState], ControlError?) in
            var states: [ProxyState] = []
            for (route, enabled) in routes {
                do {
                    if let existing = served[route.name] {
                        let sameListen = Self.sameListen(existing.route.listen, route.listen)
                        if sameListen, existing.route.upstream == route.upstream {
                            states.append(try proxy(named: route.name))
                            continue
                        }
                        await remove(route.name)
                    }
                    try await add(route, mode: settings.mode, enabled: enabled)
                    states.append(try proxy(named: route.name))
                } catch {
                    return (states, ControlError.from(error))
                }
            }
            return (states, nil)
        }
        return outcome ?? ([], ControlError(.failed, "the control plane has shut down"))
    }

    /// Changes a route's listen address, upstream or whether it is enabled, as `POST /proxies/{name}` does: a new
    /// address or upstream restarts its server.
    ///
    /// - Throws: ``ControlError``: 404 without the route, 400 for a bad address, 500 when it cannot bind.
    func update(_ name: String, listen: Endpoint?, upstream: Endpoint?, enabled: Bool?) async throws -> ProxyState {
        try await serialized {
            guard var entry = served[name] else { throw ControlError.proxyNotFound(name) }
            var route = entry.route
            if let listen, !Self.sameListen(route.listen, listen) { route.listen = listen }
            if let upstream { route.upstream = upstream }
            if route != entry.route {
                _ = try ProxyConfiguration(routes: [route])
                await stopServer(name)
                // Read again: stopping took the server out of the entry.
                entry = served[name] ?? entry
                entry.route = route
                served[name] = entry
                publish()
            }
            if let enabled { entry.faults.setEnabled(enabled) }
            try await reconcile(name)
            return try proxy(named: name)
        }
    }

    /// Deletes a route, as `DELETE /proxies/{name}` does: its server stops and its toxics go.
    ///
    /// - Throws: ``ControlError`` (404) without the route.
    func delete(_ name: String) async throws {
        try await serialized {
            guard served[name] != nil else { throw ControlError.proxyNotFound(name) }
            await remove(name)
        }
    }

    /// Removes every toxic and enables every route, as `POST /reset` does.
    ///
    /// - Throws: ``ControlError`` (500) when a route cannot bind again.
    func reset() async throws {
        try await serialized {
            settings.faults.resetAll()
            for name in order { try await reconcile(name) }
        }
    }

    /// Serves the route called `name` in `mode` from now on: its server stops (open connections reset) and one of
    /// the new mode starts on the same address.
    ///
    /// - Throws: ``ControlError``: 404 without the route, 400 when the mode needs what the deck has not (a tape,
    ///   an upstream), 500 when it cannot start.
    func setMode(_ name: String, _ mode: TapedeckMode) async throws -> ProxyState {
        try await serialized {
            guard var entry = served[name] else { throw ControlError.proxyNotFound(name) }
            guard mode != .auto else {
                throw ControlError(.badRequest, "invalid mode 'auto' for a route: use record, replay or proxy")
            }
            if mode.needsUpstream, entry.route.upstream == nil {
                throw ControlError(.badRequest, "route '\(name)' has no upstream, which \(mode) mode needs")
            }
            if mode != .proxy, settings.tapePath == nil {
                throw ControlError(.badRequest, "\(mode) mode needs a tape: start the deck with --tape")
            }
            await stopServer(name)
            // Read again: stopping took the server out of the entry.
            entry = served[name] ?? entry
            let previous = entry.mode
            entry.mode = mode
            served[name] = entry
            publish()
            do {
                try await reconcile(name)
            } catch {
                // Back to what worked, so that the route is not left without a server.
                entry = served[name] ?? entry
                entry.mode = previous
                served[name] = entry
                publish()
                try? await reconcile(name)
                throw error
            }
            return try proxy(named: name)
        }
    }

    /// Starts or stops the route's server to match its toxics and `enabled`; called after every change of them.
    func refresh(_ name: String) async {
        try? await serialized { try await reconcile(name) }
    }

    // MARK: Inside the gate

    private func add(_ route: Route, mode: TapedeckMode, enabled: Bool) async throws {
        var route = route
        _ = try ProxyConfiguration(routes: [route])
        if mode.needsUpstream { _ = try route.requireUpstream(for: mode == .proxy ? "proxying" : "recording") }
        if mode == .replay || mode == .recordMissing, let path = replayTapePath {
            // As the deck does for the routes it starts with: the tape says the route's transport and lens.
            route = try Deck.servedRoutes([route], in: try Tape(readingAt: path))[0]
        }
        if !route.listen.isLoopback {
            let warning =
                "route '\(route.name)' listens on \(route.listen), beyond loopback: anyone who can reach that "
                + "address is served"
            if let onWarning = settings.options.onWarning {
                onWarning(warning)
            } else {
                settings.options.logger.warning("\(warning)")
            }
        }
        settings.faults.forget(route: route.name)
        let faults = settings.faults.faults(for: route)
        let observer = faults.addObserver { [weak self, name = route.name] in
            // Toxic changes come from event loops (a count spent) as well as the API: bring the server in line
            // from a task of its own.
            guard let self else { return }
            Task { await self.refresh(name) }
        }
        faults.setEnabled(enabled)
        served[route.name] = Served(route: route, mode: mode, faults: faults, observer: observer, server: nil)
        order.append(route.name)
        publish()
        do {
            try await reconcile(route.name)
        } catch {
            await remove(route.name)
            throw error
        }
    }

    func remove(_ name: String) async {
        guard let entry = served[name] else { return }
        entry.faults.removeObserver(entry.observer)
        await stopServer(name)
        served[name] = nil
        order.removeAll { $0 == name }
        settings.faults.forget(route: name)
        publish()
    }

    /// Starts the route's server if it should be up and is not, stops it if it should be down and is not.
    private func reconcile(_ name: String) async throws {
        guard !isShutDown, let entry = served[name] else { return }
        let up = entry.faults.isUp
        if up, entry.server == nil {
            try await startServer(name)
        } else if !up, entry.server != nil {
            await stopServer(name)
        }
    }

    private func startServer(_ name: String) async throws {
        guard var entry = served[name], entry.server == nil else { return }
        let options = settings.options
        do {
            switch entry.mode {
            case .proxy, .record:
                let recorder = entry.mode == .record ? try await recorder(for: entry.route) : nil
                let server = ProxyServer(
                    configuration: try ProxyConfiguration(routes: [entry.route]),
                    group: options.group,
                    recorder: recorder,
                    drainTimeout: options.drainTimeout,
                    tlsContexts: settings.tlsContexts,
                    faults: settings.faults,
                    logger: options.logger
                )
                entry.route.listen = try await server.start()[0].address
                entry.server = .relay(server)
            case .replay, .recordMissing, .auto:
                let (server, known) = try await makeReplayServer(
                    entry.route,
                    recordMissing: entry.mode == .recordMissing
                )
                entry.route.listen = try await server.start()[0].address
                entry.server = .replay(server, known: known)
            }
        } catch {
            throw ControlError.from(error)
        }
        served[name] = entry
        publish()
    }

    func stopServer(_ name: String, drainTimeout: Duration = .zero) async {
        guard var entry = served[name], let server = entry.server else { return }
        entry.server = nil
        served[name] = entry
        switch server {
        case .relay(let server):
            await server.shutdown(drainTimeout: drainTimeout)
        case .replay(let server, let known):
            finishedReplays.append(
                ReplayIncarnation(route: name, report: await server.shutdown(drainTimeout: drainTimeout), known: known)
            )
        }
        publish()
    }

    /// The tape replay reads: the one being recorded when the deck records (beside the old one when it
    /// overwrites), else the deck's.
    var replayTapePath: String? {
        (settings.recorder ?? ownRecorder)?.tape.path ?? settings.tapePath
    }

    private func makeReplayServer(_ route: Route, recordMissing: Bool) async throws -> (ReplayServer, Set<Int64>) {
        guard let path = replayTapePath else {
            throw ControlError(.badRequest, "replay needs a tape: start the deck with --tape")
        }
        // What was recorded so far is replayed too.
        if let recorder = settings.recorder ?? ownRecorder { try await recorder.flush() }
        let tape = try Tape(readingAt: path)
        let options = settings.options
        var replayOptions = ReplayServer.Options(
            pace: options.pace,
            repeatSessions: options.repeatSessions,
            secrets: options.secrets,
            faults: settings.faults
        )
        if recordMissing {
            replayOptions.recordMissing = MissingSessionRecording(recorder: try await recorder(for: route))
        }
        if let contexts = settings.tlsContexts {
            replayOptions.tls = ReplayServer.TLS(contexts: contexts, profiles: try tape.replayTLS())
        }
        let server = try ReplayServer(
            tape: tape,
            routes: [route],
            options: replayOptions,
            group: options.group,
            drainTimeout: options.drainTimeout,
            logger: options.logger
        )
        let known = Set(try tape.sessionRoutes().filter { $0.route == route.name }.map(\.id))
        return (server, known)
    }

    /// The recorder for `route`, made on the deck's tape if the deck does not record, with a row for the route as
    /// it is now.
    private func recorder(for route: Route) async throws -> Recorder {
        let recorder: Recorder
        if let existing = settings.recorder ?? ownRecorder {
            recorder = existing
        } else {
            guard let make = settings.makeRecorder else {
                throw ControlError(.badRequest, "record mode needs a tape: start the deck with --tape")
            }
            recorder = try make()
            ownRecorder = recorder
        }
        let key = Self.recordingKey(route)
        if recordedRoutes[route.name] != key {
            try await recorder.addRoute(route)
            recordedRoutes[route.name] = key
        }
        return recorder
    }

    /// A route as the tape's row for it records it, whatever address its listener got.
    private static func recordingKey(_ route: Route) -> Route {
        var key = route
        key.listen = Route.defaultListen
        return key
    }

    /// Whether `listen` names the address `current` is bound to: the same, or the same host on port 0.
    private static func sameListen(_ current: Endpoint, _ listen: Endpoint) -> Bool {
        if current == listen { return true }
        switch (current, listen) {
        case (.tcp(let host, _), .tcp(let other, 0)), (.udp(let host, _), .udp(let other, 0)): return host == other
        default: return false
        }
    }

    func publish() {
        let routes = order.compactMap { name in served[name].map { BoundRoute(name: name, address: $0.route.listen) } }
        var modes: [String: TapedeckMode] = [:]
        for (name, entry) in served { modes[name] = entry.mode }
        var running: [(name: String, server: ReplayServer, known: Set<Int64>)] = []
        for name in order {
            if case .replay(let server, let known)? = served[name]?.server { running.append((name, server, known)) }
        }
        published.withLockedValue { $0 = routes }
        self.modes.withLockedValue { $0 = modes }
        replays.withLockedValue { $0 = (running, finishedReplays) }
    }

    func serialized<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        while gateBusy {
            await withCheckedContinuation { gateWaiters.append($0) }
        }
        gateBusy = true
        defer {
            gateBusy = false
            if !gateWaiters.isEmpty { gateWaiters.removeFirst().resume() }
        }
        return try await body()
    }
}
