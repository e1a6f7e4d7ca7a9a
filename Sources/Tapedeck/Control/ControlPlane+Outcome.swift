import Foundation

extension ControlPlane {
    /// How the plane's routes went, once it has shut down.
    struct Outcome: Sendable {
        /// Relayed connections still open when the drain timeout ran out, which were reset.
        var interruptedConnections = 0
        /// Every replay server's report, merged; `nil` when no route replayed.
        var replay: ReplayReport?
        /// Sessions the plane's own recorder wrote (a route switched to record on a deck that does not record).
        var recordedSessions = 0
        /// What finishing that recorder threw.
        var recordingError: TapedeckError?
    }

    /// One route's sessions so far, for `GET /tapedeck/sessions`.
    struct RouteSessions: Sendable, Encodable {
        /// The route's mode.
        var mode: String
        /// Whether its server is up.
        var serving: Bool
        /// Client and upstream connections open now (relaying routes).
        var openConnections: Int?
        /// Connections replay accepted so far (replaying routes, every server the route had).
        var connections: Int?
        /// Sessions recorded for the route in this run, in order.
        var recorded: [SessionSummary]?

        enum CodingKeys: String, CodingKey {
            case mode, serving, connections, recorded
            case openConnections = "open_connections"
        }
    }

    /// The replay report so far, of every replay server the routes had; `nil` when no route replayed.
    func replayReport() -> ReplayReport? {
        var parts = finishedReplays
        for name in order {
            guard case .replay(let server, let known)? = served[name]?.server else { continue }
            parts.append(ReplayIncarnation(route: name, report: server.report, known: known))
        }
        return parts.isEmpty ? nil : ReplayReport.merged(parts)
    }

    /// Each route's sessions so far: open connections of a relay, connections of a replay, and the sessions
    /// recorded in this run (committed first, so that the list is complete).
    func sessions() async throws -> [String: RouteSessions] {
        let report = replayReport()
        var recorded: [String: [SessionSummary]] = [:]
        if let recorder = settings.recorder ?? ownRecorder {
            try await recorder.flush()
            let tape = try Tape(readingAt: recorder.tape.path)
            try tape.forEachSession(matching: SessionQuery()) { session in
                if session.run == recorder.runID { recorded[session.route, default: []].append(session) }
            }
        }
        var sessions: [String: RouteSessions] = [:]
        for name in order {
            guard let entry = served[name] else { continue }
            var state = RouteSessions(mode: entry.mode.rawValue, serving: entry.server != nil)
            switch entry.server {
            case .relay(let server)?: state.openConnections = server.openConnectionCount
            default: break
            }
            if entry.mode == .replay || entry.mode == .recordMissing {
                state.connections =
                    report.map { report in
                        report.replayed.filter { $0.route == name }.count
                            + report.mismatches.filter { $0.route == name }.count
                            + report.recorded.filter { $0.route == name }.count
                    } ?? 0
            }
            if entry.mode.writesTape { state.recorded = recorded[name] ?? [] }
            sessions[name] = state
        }
        return sessions
    }

    /// Stops the API, then every route: their listeners close at once, open connections get up to
    /// `drainTimeout` to end and are reset after; then a recorder the plane made is finished. Once shut down, no
    /// route starts again.
    func stopEverything(drainTimeout: Duration) async -> Outcome {
        // First, and outside the gate: a request in flight may be waiting at the gate.
        await apiServer?.stop()
        let stopped = try? await serialized { () -> Outcome in
            isShutDown = true
            var outcome = Outcome()
            let servers = order.compactMap { name in served[name].flatMap { entry in entry.server.map { (name, $0) } } }
            for name in order { served[name]?.server = nil }
            // Side by side, so that every route drains within the one timeout.
            let results = await withTaskGroup(of: (Int, ReplayIncarnation?).self) { group in
                for (name, server) in servers {
                    group.addTask {
                        switch server {
                        case .relay(let server):
                            return (await server.shutdown(drainTimeout: drainTimeout).interruptedConnections, nil)
                        case .replay(let server, let known):
                            let report = await server.shutdown(drainTimeout: drainTimeout)
                            return (0, ReplayIncarnation(route: name, report: report, known: known))
                        }
                    }
                }
                var results: [(Int, ReplayIncarnation?)] = []
                for await result in group { results.append(result) }
                return results
            }
            for (interrupted, incarnation) in results {
                outcome.interruptedConnections += interrupted
                if let incarnation { finishedReplays.append(incarnation) }
            }
            publish()
            outcome.replay = finishedReplays.isEmpty ? nil : ReplayReport.merged(finishedReplays)
            if let ownRecorder {
                do {
                    try await ownRecorder.finish()
                    outcome.recordedSessions = try ownRecorder.sessionCount()
                    try ownRecorder.tape.close()
                } catch {
                    outcome.recordingError =
                        error as? TapedeckError
                        ?? TapedeckError(.recordingFailed, "\(error); the recording is incomplete")
                }
            }
            return outcome
        }
        return stopped ?? Outcome()
    }
}
