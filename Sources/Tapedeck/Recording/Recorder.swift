import Atomics
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// Records every session of a proxy into a tape, as one run.
///
/// Create it before the ``ProxyServer`` that feeds it, and finish it after the server has shut down, so that
/// the tape is flushed last. While it records, its writer thread owns the tape's connection: read the tape
/// through a separate ``Tape/init(readingAt:)`` (which WAL makes possible at the same time), not through the
/// `Tape` given here, whose reads would wait until ``finish()``.
///
/// ```swift
/// let tape = try Tape(recordingAt: "fixtures/redis.tape")
/// let recorder = try Recorder(tape: tape, routes: configuration.routes, label: "login flow")
/// let server = ProxyServer(configuration: configuration, recorder: recorder)
/// try await server.start()
/// // … traffic …
/// await server.shutdown()
/// try await recorder.finish()
/// ```
///
/// It starts as it is made, and finishes once: a second ``finish()`` does nothing and throws (or not) as the
/// first did. It is also a `Service`, whose ``run()`` waits for a graceful shutdown or task cancellation and then
/// finishes: list it in a `ServiceGroup` before the servers that feed it, since a group shuts its services down
/// in reverse order, so the recorder finishes after them.
///
/// ```swift
/// let group = ServiceGroup(services: [recorder, server], logger: logger)
/// ```
public final class Recorder: Service {
    /// The tape being written.
    public let tape: Tape
    /// The run's id in the tape.
    public let runID: Int64
    private let routeIDs: [String: Int64]
    /// Each route's redact rules, compiled for each direction, and the ids its rules have in the tape.
    private let redaction: [String: SessionRecorder.Redaction]
    private let writer: TapeWriter
    /// Routes added while recording (``addRoute(_:)``): their row ids and redactions, which win over the first
    /// routes' of the same name. Read only once ``hasAddedRoutes`` is set, so a recorder whose routes were all
    /// given at start pays one relaxed load per connection for it.
    private let addedRoutes = NIOLockedValueBox([String: (id: Int64, redaction: SessionRecorder.Redaction?)]())
    private let hasAddedRoutes = ManagedAtomic<Bool>(false)
    private let nextKey = ManagedAtomic<UInt64>(1)
    private let lifecycle = Lifecycle<Void, Result<Void, any Error>>("recorder", running: ())

    /// Starts a run in the tape and the thread that writes it.
    ///
    /// - Parameters:
    ///   - tape: A tape opened with ``Tape/init(recordingAt:overwrite:)``.
    ///   - routes: The routes whose sessions will be recorded.
    ///   - label: An optional label stored with the run.
    ///   - mode: `record`, or `replay` when replay records what the tape was missing.
    ///   - budget: Bytes read but not yet on disk above which relays stop reading.
    ///   - onFailure: Called once, from the writer thread, if the tape cannot be written.
    public init(
        tape: Tape,
        routes: [Route],
        label: String? = nil,
        mode: String = "record",
        maximumPendingBytes: Int = 64 << 20,
        onFailure: @escaping @Sendable (TapedeckError) -> Void = { _ in }
    ) throws {
        self.tape = tape
        let ruleIDs: [String: [Int64]]
        (runID, routeIDs, ruleIDs) = try tape.beginRun(routes: routes, label: label, mode: mode)
        var redaction: [String: SessionRecorder.Redaction] = [:]
        for route in routes where route.rules.contains(where: { $0.kind == .redact }) {
            redaction[route.name] = SessionRecorder.Redaction(
                client: try CompiledRules(route.rules, direction: .clientToUpstream, kinds: [.redact]),
                upstream: try CompiledRules(route.rules, direction: .upstreamToClient, kinds: [.redact]),
                ruleIDs: ruleIDs[route.name] ?? []
            )
        }
        self.redaction = redaction
        writer = TapeWriter(
            tape: tape,
            budget: RecordingBudget(highMark: maximumPendingBytes, lowMark: maximumPendingBytes / 2),
            onFailure: onFailure
        )
    }

    /// The error that stopped recording, if the tape could not be written.
    public var failure: TapedeckError? { writer.error }

    /// Begins recording a newly accepted client connection.
    ///
    /// - Parameter onUndecryptedTLS: Called once if the client of a route without TLS starts TLS, which is then
    ///   recorded as ciphertext.
    func beginSession(
        route: Route,
        clientAddress: String,
        onUndecryptedTLS: (@Sendable (TLSStartRecognizer.Upgrade) -> Void)? = nil
    ) -> SessionRecorder {
        let key = nextKey.loadThenWrappingIncrement(ordering: .relaxed)
        var routeID = routeIDs[route.name] ?? 0
        var redaction = self.redaction[route.name]
        if hasAddedRoutes.load(ordering: .relaxed), let added = addedRoutes.withLockedValue({ $0[route.name] }) {
            (routeID, redaction) = added
        }
        let start = TapeWriter.SessionStart(
            key: key,
            runID: runID,
            routeID: routeID,
            route: route.name,
            clientAddress: clientAddress,
            upstreamAddress: route.upstreamText,
            startedAt: WallClock.nowNanoseconds()
        )
        let recorder = SessionRecorder(key: key, start: start, writer: writer, redaction: redaction)
        if route.tls.mode == .off, !route.isDatagram, let onUndecryptedTLS {
            recorder.watchForUndecryptedTLS(onUndecryptedTLS)
        }
        return recorder
    }

    /// Stores the addresses the routes' listeners were bound to, in place of the configured ones.
    ///
    /// Replay needs the real address of a listener started on port 0: clients write it into what they send
    /// (HTTP's `Host` header), and replay recognizes it there.
    func routesBound(_ routes: [BoundRoute]) {
        for route in routes {
            let added =
                hasAddedRoutes.load(ordering: .relaxed) ? addedRoutes.withLockedValue { $0[route.name]?.id } : nil
            guard let routeID = added ?? routeIDs[route.name] else { continue }
            writer.submit(.routeBound(routeID: routeID, listen: "\(route.address)"))
        }
    }

    /// Adds a route to the run while it records, for a route created at runtime (the control API): its row and
    /// its rules go through the writer like everything else, and its sessions are recorded under it from then
    /// on. Adding a route of a name the run has replaces it for the sessions that begin afterwards.
    ///
    /// - Throws: ``TapedeckError`` with code `recordingFailed` when the tape can no longer be written or the
    ///   recorder has finished; with code `invalidArgument` for rules that do not compile.
    public func addRoute(_ route: Route) async throws {
        guard lifecycle.running != nil else {
            throw TapedeckError(.recordingFailed, "cannot add route '\(route.name)': the recording has finished")
        }
        let redaction: SessionRecorder.Redaction?
        if route.rules.contains(where: { $0.kind == .redact }) {
            redaction = SessionRecorder.Redaction(
                client: try CompiledRules(route.rules, direction: .clientToUpstream, kinds: [.redact]),
                upstream: try CompiledRules(route.rules, direction: .upstreamToClient, kinds: [.redact]),
                ruleIDs: []
            )
        } else {
            redaction = nil
        }
        let rows = await withCheckedContinuation { (continuation: CheckedContinuation<TapeWriter.RouteRows?, Never>) in
            // The writer calls every addition back exactly once, written or not.
            writer.submit(
                .routeAdded(.init(runID: runID, route: route) { rows in continuation.resume(returning: rows) })
            )
        }
        guard let rows else {
            throw failure
                ?? TapedeckError(.recordingFailed, "cannot add route '\(route.name)': the tape could not be written")
        }
        var written = redaction
        written?.ruleIDs = rows.ruleIDs
        addedRoutes.withLockedValue { $0[route.name] = (rows.routeID, written) }
        hasAddedRoutes.store(true, ordering: .relaxed)
    }

    /// Waits until everything recorded so far is committed to the tape.
    public func flush() async throws {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            // The writer calls every flush back exactly once, after a commit or, if it failed, when discarding.
            writer.submit(.flush { continuation.resume() })
        }
        if let failure { throw failure }
    }

    /// The number of sessions this run has on tape so far.
    public func sessionCount() throws -> Int {
        try tape.sessionCount(inRun: runID)
    }

    /// Writes everything still queued, closes the run, and stops the writer.
    ///
    /// Only the first call does so; later ones wait for it and end as it did.
    ///
    /// - Throws: ``TapedeckError`` with code `recordingFailed` if any part of the recording could not be written.
    public func finish() async throws {
        try await finishing().get()
    }

    /// Records until a graceful shutdown or task cancellation (or ``finish()``), then finishes.
    ///
    /// - Throws: What ``finish()`` throws, or ``TapedeckError`` if another `run()` is serving this recorder.
    public func run() async throws {
        try await lifecycle.run(start: {}) { _ in await self.finishing() }.get()
    }

    private func finishing() async -> Result<Void, any Error> {
        await lifecycle.stop { _ in
            if let failure = await writer.finish() { return .failure(failure) }
            do {
                try await tape.endRun(runID)
                return .success(())
            } catch {
                return .failure(error)
            }
        }
    }
}
