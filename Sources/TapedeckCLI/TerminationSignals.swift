import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import Tapedeck
import UnixSignals

/// How the long-running commands end: the first SIGINT or SIGTERM starts a graceful shutdown, and a second one
/// ends the process at once, for the user who does not want to wait for connections to drain.
enum TerminationSignals {
    /// Runs `deck` in a service group that shuts it down gracefully on the first SIGINT or SIGTERM (calling
    /// `onShutdown` as it begins), and returns once the deck has stopped; ``Deck/stop(drainTimeout:)`` then
    /// returns the outcome. From the first signal on, another one exits the process immediately with status
    /// 128 + signal number, as a shell reports a killed command.
    ///
    /// - Throws: What the deck's stop threw, such as a recording that could not be written, after which the deck
    ///   stops without waiting for a signal.
    static func serve(_ deck: Deck, logger: Logger, onShutdown: @escaping @Sendable () -> Void = {}) async throws {
        let shutdown = NIOLockedValueBox<ServiceGroup?>(nil)
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: [
                    .init(
                        service: SecondSignal(
                            onFirst: onShutdown,
                            shutDownForEarlySignal: { await shutdown.withLockedValue { $0 }?.triggerGracefulShutdown() }
                        )
                    ),
                    .init(service: deck),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        shutdown.withLockedValue { $0 = group }
        try await group.run()
    }

    /// Returns at the first SIGINT or SIGTERM, or at once for one caught since ``catchEarly()``: for a command
    /// with nothing to drain, such as `tapedeck web`.
    static func waitForTermination() async {
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        // Checked once the sequence traps them, so that no signal falls between the check and the trapping.
        if caughtEarly != nil { return }
        for await _ in signals { return }
    }

    /// A SIGINT or SIGTERM that came before the service group was listening for them, or 0.
    ///
    /// Written only by ``recordEarlySignal`` and read after the group listens: between the two the value is a
    /// plain word stored from a signal handler, which is async-signal-safe.
    nonisolated(unsafe) private static var earlySignal: Int32 = 0

    /// Catches SIGINT and SIGTERM from now until a service group listens for them, so that a signal sent right
    /// after the `listening` line (a test harness stopping a replay at once) shuts the deck down gracefully
    /// instead of killing the process. Call it before starting the deck.
    static func catchEarly() {
        earlySignal = 0
        signal(SIGINT, recordEarlySignal)
        signal(SIGTERM, recordEarlySignal)
    }

    private static let recordEarlySignal: @convention(c) (Int32) -> Void = { signal in
        TerminationSignals.earlySignal = signal
    }

    /// Whether a signal came before the group listened; its number, or nil.
    fileprivate static var caughtEarly: Int32? { earlySignal == 0 ? nil : earlySignal }

    /// Unblocks SIGINT and SIGTERM for this thread and the threads it starts afterwards.
    ///
    /// A blocked mask is inherited across `exec`: a parent that blocks these signals (some test runners and
    /// process libraries do) would otherwise leave Tapedeck deaf to them. Call it first thing in `main`.
    static func unblock() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}

/// Exits on the second SIGINT or SIGTERM. The service group turns the first into a graceful shutdown; this
/// service hears it too, and is listed before the deck so that the group shuts it down after the deck: it keeps
/// listening while connections drain.
private struct SecondSignal: Service {
    var onFirst: @Sendable () -> Void
    /// Starts the group's graceful shutdown, for a signal caught before the group listened.
    var shutDownForEarlySignal: @Sendable () async -> Void

    func run() async throws {
        var received = 0
        // The group listens for signals before it starts its services: one caught earlier is acted on now.
        if TerminationSignals.caughtEarly != nil {
            received = 1
            onFirst()
            await shutDownForEarlySignal()
        }
        for await signal in await UnixSignalsSequence(trapping: .sigint, .sigterm).cancelOnGracefulShutdown() {
            received += 1
            guard received > 1 else {
                onFirst()
                continue
            }
            StandardStreams.writeError("tapedeck: second signal, exiting now\n")
            _exit(128 + signal.rawValue)
        }
    }
}
