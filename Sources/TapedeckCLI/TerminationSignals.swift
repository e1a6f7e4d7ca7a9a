import Dispatch
import Foundation
import NIOConcurrencyHelpers
import Tapedeck

/// Waits for the signals that ask a long-running command to stop: SIGINT and SIGTERM.
///
/// The first signal starts a graceful shutdown; a second one ends the process at once, for the user who does
/// not want to wait for connections to drain.
enum TerminationSignals {
    /// Returns when SIGINT or SIGTERM arrives, with the signal number. From then on another such signal exits
    /// the process immediately with status 128 + signal number, as a shell reports a killed command.
    static func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            install { continuation.resume(returning: $0) }
        }
    }

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

    /// Calls `handler` on the first SIGINT or SIGTERM; a second one exits the process at once with status
    /// 128 + signal number.
    static func install(_ handler: @escaping @Sendable (Int32) -> Void) {
        let received = NIOLockedValueBox(0)
        let queue = DispatchQueue(label: "tapedeck.signals")
        var sources: [any DispatchSourceSignal] = []
        for number in [SIGINT, SIGTERM] {
            // The default action would kill the process before the dispatch source sees the signal.
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                let count = received.withLockedValue { count in
                    count += 1
                    return count
                }
                if count == 1 {
                    handler(number)
                } else {
                    StandardStreams.writeError("tapedeck: second signal, exiting now\n")
                    _exit(128 + number)
                }
            }
            source.resume()
            sources.append(source)
        }
        // The sources must outlive this call; they serve the rest of the process's life.
        keepAlive.withLockedValue { $0.append(contentsOf: sources) }
    }

    // Dispatch sources are thread-safe objects that Dispatch does not mark Sendable; the box only stores them.
    nonisolated(unsafe) private static let keepAlive = NIOLockedValueBox<[any DispatchSourceSignal]>([])
}
