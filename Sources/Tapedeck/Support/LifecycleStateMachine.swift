/// The one start/stop contract of Tapedeck's long-running parts (the servers, the recorder, the deck), as a value
/// type with no locks or tasks in it: started at most once, stopped once however many ask, and served by at most
/// one `run()` at a time.
///
/// `Running` is what a start produced and a stop needs (the listeners, say); `Outcome` is what a stop returns,
/// to the first caller and to every later one. ``Lifecycle`` drives it under a lock.
struct LifecycleStateMachine<Running: Sendable, Outcome: Sendable> {
    enum State {
        /// Never started.
        case idle
        /// A start is under way; stops that come meanwhile wait for it to settle.
        case starting(settled: [CheckedContinuation<Void, Never>])
        case running(Running)
        /// The start threw: there is nothing to stop, and nothing to start again.
        case failed
        /// The first stop is at work; later ones wait for its outcome.
        case stopping(outcomeWaiters: [CheckedContinuation<Outcome, Never>])
        case stopped(Outcome)
    }

    /// Why a start or a run is refused.
    enum Refusal: Equatable {
        case alreadyStarted
        case alreadyStopped
        case alreadyRunning
    }

    private(set) var state: State
    /// Whether a `run()` is serving now.
    private var serving = false
    /// Whether something asked the running part to stop (a graceful shutdown, a cancelled run, a failure), before
    /// or while a `run()` waits for it.
    private var stopAskedFor = false
    /// The `run()` waiting for a stop to be asked for.
    private var stopRequestWaiter: CheckedContinuation<Void, Never>?

    init() {
        state = .idle
    }

    /// Starts out running: for a part that starts as it is made (a recorder, a deck).
    init(running: Running) {
        state = .running(running)
    }

    // MARK: Starting

    enum StartAction {
        /// Do the start, then report ``startSucceeded(_:)`` or ``startFailed()``.
        case start
        case refuse(Refusal)
    }

    mutating func startRequested() -> StartAction {
        switch state {
        case .idle:
            state = .starting(settled: [])
            return .start
        case .starting, .running, .failed:
            return .refuse(.alreadyStarted)
        case .stopping, .stopped:
            return .refuse(.alreadyStopped)
        }
    }

    /// What to resume once a start has settled: the stops that waited for it.
    struct Settled {
        var stops: [CheckedContinuation<Void, Never>]
        /// A `run()` left with nothing to serve, after a failed start.
        var run: CheckedContinuation<Void, Never>?
    }

    mutating func startSucceeded(_ running: Running) -> Settled {
        guard case .starting(let settled) = state else { preconditionFailure("a start settled twice") }
        state = .running(running)
        return Settled(stops: settled, run: nil)
    }

    mutating func startFailed() -> Settled {
        guard case .starting(let settled) = state else { preconditionFailure("a start settled twice") }
        state = .failed
        defer { stopRequestWaiter = nil }
        return Settled(stops: settled, run: stopRequestWaiter)
    }

    // MARK: Stopping

    enum StopAction {
        /// Do the stop with what the start produced (`nil` if it never did), then report ``stopFinished(_:)``;
        /// resume `run`, the `run()` that was waiting for a stop.
        case stop(Running?, run: CheckedContinuation<Void, Never>?)
        /// A start is under way: wait for it with ``waitForStart(_:)``, then ask again.
        case waitForStart
        /// Another stop is at work: wait for its outcome with ``waitForOutcome(_:)``.
        case waitForOutcome
        case done(Outcome)
    }

    mutating func stopRequested() -> StopAction {
        let running: Running?
        switch state {
        case .idle, .failed:
            running = nil
        case .running(let value):
            running = value
        case .starting:
            return .waitForStart
        case .stopping:
            return .waitForOutcome
        case .stopped(let outcome):
            return .done(outcome)
        }
        state = .stopping(outcomeWaiters: [])
        defer { stopRequestWaiter = nil }
        return .stop(running, run: stopRequestWaiter)
    }

    /// Registers a stop waiting for a start to settle; `false` if it settled already (ask again at once).
    mutating func waitForStart(_ continuation: CheckedContinuation<Void, Never>) -> Bool {
        guard case .starting(var settled) = state else { return false }
        settled.append(continuation)
        state = .starting(settled: settled)
        return true
    }

    /// Registers a stop waiting for another's outcome; returns the outcome instead if it is known already.
    mutating func waitForOutcome(_ continuation: CheckedContinuation<Outcome, Never>) -> Outcome? {
        switch state {
        case .stopping(var waiters):
            waiters.append(continuation)
            state = .stopping(outcomeWaiters: waiters)
            return nil
        case .stopped(let outcome):
            return outcome
        case .idle, .starting, .running, .failed:
            preconditionFailure("waiting for the outcome of a stop that never began")
        }
    }

    /// Records the outcome; returns the stops that waited for it.
    mutating func stopFinished(_ outcome: Outcome) -> [CheckedContinuation<Outcome, Never>] {
        guard case .stopping(let waiters) = state else { preconditionFailure("a stop finished twice") }
        state = .stopped(outcome)
        return waiters
    }

    // MARK: Running as a service

    enum RunAction {
        /// Start first (the state is now starting: report ``startSucceeded(_:)`` or ``startFailed()``), then serve.
        case start
        /// Started already: serve until a stop is asked for.
        case serve
        /// Stopping or stopped already: join that stop, serving nothing.
        case stop
        case refuse(Refusal)
    }

    mutating func runRequested() -> RunAction {
        switch state {
        case .failed, .stopping, .stopped:
            return .stop
        case .idle, .starting, .running:
            guard !serving else { return .refuse(.alreadyRunning) }
            serving = true
            guard case .idle = state else { return .serve }
            state = .starting(settled: [])
            return .start
        }
    }

    mutating func runFinished() {
        serving = false
    }

    /// Registers the `run()` that waits for a stop to be asked for; `false` if one was asked for already (or
    /// there is nothing left to serve), so it stops at once.
    mutating func waitForStopRequest(_ continuation: CheckedContinuation<Void, Never>) -> Bool {
        switch state {
        case .idle, .starting, .running:
            guard !stopAskedFor else { return false }
            stopRequestWaiter = continuation
            return true
        case .failed, .stopping, .stopped:
            return false
        }
    }

    /// Asks the serving `run()`, or the next one, to stop; returns the waiting run to resume.
    mutating func stopAsked() -> CheckedContinuation<Void, Never>? {
        stopAskedFor = true
        defer { stopRequestWaiter = nil }
        return stopRequestWaiter
    }
}
