import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Retries the bind of a port's shared listeners when it fails just after a plain probe bind found the port free.
///
/// A route listening on several event loops first binds its port with a plain socket (no `SO_REUSEPORT`), which
/// fails on a port anyone holds, closes it, and binds the loops' sockets, which share the port. Closing the probe
/// does not release the port while another process still holds the socket, and a child forked by this process
/// holds every descriptor of ours from the fork until it closes them before `exec` (as `tapedeck run` and a test
/// suite starting servers do). A probe closed while a child is being forked keeps its port busy for that moment,
/// and the bind that follows fails with "address already in use" though no one else wants the port. The port
/// then frees itself within milliseconds, so a bounded retry (with a new probe, so a port truly taken in between
/// is still reported) turns the spurious failure into a short wait.
enum ProbedRebind {
    /// How many times the probe and the binds are tried in all.
    static let attempts = 20

    /// How long to wait before trying again: long enough for a forked child to reach its `exec`.
    static let pause: Duration = .milliseconds(10)

    /// A bind after a successful probe that failed because the port was in use: worth another try.
    struct Raced: Error {
        /// What the bind threw.
        let underlying: any Error
    }

    /// Whether `error` is the kernel's "address already in use".
    static func isAddressInUse(_ error: any Error) -> Bool {
        (error as? IOError)?.errnoCode == EADDRINUSE
    }

    /// Runs `bind` until it does not throw ``Raced``, at most ``attempts`` times; the last `Raced` is rethrown as
    /// the error it wraps, and any other error at once.
    static func retrying<Result>(_ bind: () async throws -> Result) async throws -> Result {
        var attempt = 1
        while true {
            do {
                return try await bind()
            } catch let raced as Raced {
                guard attempt < attempts else { throw raced.underlying }
                attempt += 1
                try await Task.sleep(for: pause)
            }
        }
    }
}
