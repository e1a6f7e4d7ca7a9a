import Foundation

extension Deck {
    /// Starts a deck whose routes a ``ControlPlane`` holds one by one, with the control API on `api`.
    ///
    /// The same checks as without an API apply to the routes given (which may be none); the API then serves
    /// Toxiproxy's REST API and Tapedeck's own over them.
    static func startControlled(
        _ mode: TapedeckMode,
        tape: String?,
        routes: [Route],
        api: Endpoint,
        recorder: Recorder?,
        replacement: TapeReplacement?,
        options: Options,
        lifecycle: Lifecycle<Void, Result<DeckOutcome, any Error>>
    ) async throws -> Deck {
        if !api.isLoopback {
            let warning =
                "the control API listens on \(api), beyond loopback: anyone who can reach that address can change "
                + "the deck's routes and faults"
            options.warn(warning)
        }
        let given = routes
        var routes = routes
        var tlsContexts: TLSContexts?
        if let tape, mode == .replay || mode == .recordMissing {
            let reading = try Tape(readingAt: tape)
            routes = try servedRoutes(routes, in: reading)
            if mode == .recordMissing, let route = routes.first(where: \.isDatagram) {
                throw TapedeckError(
                    .invalidArgument,
                    "route '\(route.name)' is UDP, whose missing flows replay cannot record; record them with "
                        + "`tapedeck record`"
                )
            }
            if try !reading.replayTLS().isEmpty { tlsContexts = try makeTLSContexts(options) }
        }
        if tlsContexts == nil, routes.contains(where: { $0.tls.mode != .off }) {
            tlsContexts = try makeTLSContexts(options)
        }
        // A route switched to record on a deck that does not record gets a recorder on the deck's tape then.
        var makeRecorder: (@Sendable () throws -> Recorder)?
        if let tape {
            makeRecorder = {
                try Deck.makeRecorder(
                    tape: tape,
                    writingTo: tape,
                    mode: .record,
                    routes: [],
                    options: options,
                    onFailure: { lifecycle.requestStop() }
                )
            }
        }
        let faults = options.faults ?? FaultRegistry()
        let plane = ControlPlane(
            settings: ControlPlane.Settings(
                mode: mode,
                tapePath: tape,
                recorder: recorder,
                recordedRoutes: recorder == nil ? [] : given,
                makeRecorder: makeRecorder,
                options: options,
                faults: faults,
                tlsContexts: tlsContexts
            )
        )
        let bound = try await plane.start(routes)
        do {
            // Once the routes exist: the plane gives each a fresh set of toxics as it adds it.
            if let plan = options.faultPlan { try faults.apply(plan, to: routes) }
            _ = try await plane.serveAPI(on: api)
        } catch {
            _ = await plane.shutdown(drainTimeout: .zero)
            throw error
        }
        return Deck(
            mode: mode,
            tapePath: tape,
            routes: bound,
            server: .control(plane),
            recorder: recorder,
            tlsContexts: tlsContexts,
            replacement: replacement,
            options: options,
            lifecycle: lifecycle
        )
    }
}
