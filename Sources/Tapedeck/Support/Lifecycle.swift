import NIOConcurrencyHelpers
import ServiceLifecycle

/// Starts, stops and runs one long-running part under the one contract every part keeps: a second start throws a
/// ``TapedeckError``, a second stop does nothing and returns the first one's outcome, and `run()` (the part as a
/// `Service`) starts unless started, serves until a graceful shutdown, task cancellation or a stop, then stops.
///
/// The rules are ``LifecycleStateMachine``'s; this class keeps the machine under a lock and resumes the tasks it
/// says to, outside the lock.
final class Lifecycle<Running: Sendable, Outcome: Sendable>: Sendable {
    private let name: String
    private let state: NIOLockedValueBox<LifecycleStateMachine<Running, Outcome>>

    /// A part that starts when asked to; `name` ("proxy server") names it in refusals.
    init(_ name: String) {
        self.name = name
        state = NIOLockedValueBox(LifecycleStateMachine())
    }

    /// A part that started as it was made.
    init(_ name: String, running: Running) {
        self.name = name
        state = NIOLockedValueBox(LifecycleStateMachine(running: running))
    }

    /// What the start produced, while the part runs; `nil` before it started and once a stop began.
    var running: Running? {
        state.withLockedValue { machine in
            guard case .running(let running) = machine.state else { return nil }
            return running
        }
    }

    /// Starts the part with `body`, once.
    ///
    /// - Throws: ``TapedeckError`` if the part was started (or stopped) before, or what `body` threw.
    func start(_ body: () async throws -> Running) async throws -> Running {
        switch state.withLockedValue({ $0.startRequested() }) {
        case .refuse(let refusal):
            throw error(refusal)
        case .start:
            return try await settle(body)
        }
    }

    /// Stops the part with `body`, given what the start produced (`nil` if it never started); the stops that
    /// come while it works, and after, return its outcome without calling their `body`. A stop that comes
    /// while the part is starting waits for the start first.
    func stop(_ body: (Running?) async -> Outcome) async -> Outcome {
        while true {
            switch state.withLockedValue({ $0.stopRequested() }) {
            case .stop(let running, let run):
                // A stop begun by a direct call ends a run() waiting to serve; it then joins this stop.
                run?.resume()
                let outcome = await body(running)
                for waiter in state.withLockedValue({ $0.stopFinished(outcome) }) {
                    waiter.resume(returning: outcome)
                }
                return outcome
            case .waitForStart:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    if !state.withLockedValue({ $0.waitForStart(continuation) }) { continuation.resume() }
                }
            case .waitForOutcome:
                return await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                    if let outcome = state.withLockedValue({ $0.waitForOutcome(continuation) }) {
                        continuation.resume(returning: outcome)
                    }
                }
            case .done(let outcome):
                return outcome
            }
        }
    }

    /// Asks the part's `run()` to stop as if shut down gracefully, now or as soon as it serves.
    func requestStop() {
        state.withLockedValue { $0.stopAsked() }?.resume()
    }

    /// Serves as a `Service`: starts with `start` unless the part was started, waits until a graceful shutdown,
    /// task cancellation, ``requestStop()`` or a stop, then stops with `stop`, told whether the task was
    /// cancelled (and should stop at once, rather than drain). A part already stopping is joined; a stopped
    /// one returns its outcome.
    ///
    /// - Throws: ``TapedeckError`` if another `run()` serves the part, or what `start` threw.
    func run(
        start: () async throws -> Running,
        stop: (_ cancelled: Bool) async -> Outcome
    ) async throws -> Outcome {
        switch state.withLockedValue({ $0.runRequested() }) {
        case .refuse(let refusal):
            throw error(refusal)
        case .stop:
            return await stop(Task.isCancelled)
        case .start:
            defer { state.withLockedValue { $0.runFinished() } }
            _ = try await settle(start)
            return await serve(then: stop)
        case .serve:
            defer { state.withLockedValue { $0.runFinished() } }
            return await serve(then: stop)
        }
    }

    private func serve(then stop: (_ cancelled: Bool) async -> Outcome) async -> Outcome {
        await withTaskCancellationOrGracefulShutdownHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if !state.withLockedValue({ $0.waitForStopRequest(continuation) }) { continuation.resume() }
            }
        } onCancelOrGracefulShutdown: {
            self.requestStop()
        }
        return await stop(Task.isCancelled)
    }

    private func settle(_ body: () async throws -> Running) async throws -> Running {
        let running: Running
        do {
            running = try await body()
        } catch {
            resume(state.withLockedValue { $0.startFailed() })
            throw error
        }
        resume(state.withLockedValue { $0.startSucceeded(running) })
        return running
    }

    private func resume(_ settled: LifecycleStateMachine<Running, Outcome>.Settled) {
        for stop in settled.stops { stop.resume() }
        settled.run?.resume()
    }

    private func error(_ refusal: LifecycleStateMachine<Running, Outcome>.Refusal) -> TapedeckError {
        switch refusal {
        case .alreadyStarted: TapedeckError(.invalidArgument, "\(name) was already started")
        case .alreadyStopped: TapedeckError(.invalidArgument, "\(name) was already stopped")
        case .alreadyRunning: TapedeckError(.invalidArgument, "\(name) is already running")
        }
    }
}
