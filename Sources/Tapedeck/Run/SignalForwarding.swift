import Atomics

#if canImport(Glibc)
import Glibc
#endif

/// Passes the signals that ask a program to stop, or to do something, on to the command `tapedeck run` runs.
///
/// The command decides what a signal means; Tapedeck keeps serving until the command has exited, so that a
/// test suite shutting down cleanly still reaches its services. A signal a terminal generated (Ctrl-C,
/// Ctrl-\, a hangup) is not passed on: the terminal sent it to the whole foreground process group, the
/// command included, and a second copy would make it look like the user pressed Ctrl-C twice.
///
/// A second SIGINT or SIGTERM, as for `tapedeck proxy`, ends `run` at once with 128 plus the signal's number,
/// and the command with it (SIGKILL): a command that ignores the first must not keep `run` alive.
enum SignalForwarding {
    /// The signals passed on.
    static let signals = [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]

    /// Catches the signals; those arriving before ``forward(to:)`` names the child are kept for it.
    static func install() {
        // Globals are initialized on first use, which a signal handler must not be the one to do.
        stopRequests.store(0, ordering: .sequentiallyConsistent)
        _ = target.load(ordering: .sequentiallyConsistent)
        _ = pending.load(ordering: .sequentiallyConsistent)
        for number in signals {
            var action = sigaction()
            action.__sigaction_handler.sa_sigaction = { number, info, _ in
                forwardFromHandler(number, info)
            }
            action.sa_flags = SA_SIGINFO | SA_RESTART
            sigemptyset(&action.sa_mask)
            sigaction(number, &action, nil)
        }
    }

    /// From now on, passes signals on to `pid`, starting with any that arrived while it was being started.
    static func forward(to pid: pid_t) {
        target.store(pid, ordering: .sequentiallyConsistent)
        let early = pending.exchange(0, ordering: .sequentiallyConsistent)
        for number in signals where early & (1 << UInt64(number)) != 0 {
            kill(pid, number)
        }
    }

    /// Stops passing signals on: the child has exited, and its pid may be reused.
    static func stop() {
        target.store(0, ordering: .sequentiallyConsistent)
    }
}

/// Where signals go: the child's pid, or 0 before it is started and after it has exited.
///
/// A signal handler may only touch lock-free atomics, and these live for the whole process, so the handler
/// never sees them freed: each is a pointer to one word, created once and never destroyed.
private let target = UnsafeAtomic<Int32>.create(0)
/// Signals that arrived before there was a child to pass them to, one bit per signal number.
private let pending = UnsafeAtomic<UInt64>.create(0)
/// How many SIGINT and SIGTERM have arrived, from the terminal or not.
private let stopRequests = UnsafeAtomic<Int>.create(0)

/// `si_code` of a signal the kernel generated itself, as a terminal's are (Linux's SI_KERNEL).
private let signalFromKernel: Int32 = 0x80

/// Runs in the signal handler: only async-signal-safe calls (atomic loads and read-modify-writes, kill, write,
/// _exit).
private func forwardFromHandler(_ number: Int32, _ info: UnsafeMutablePointer<siginfo_t>?) {
    if number == SIGINT || number == SIGTERM,
        stopRequests.loadThenWrappingIncrement(ordering: .sequentiallyConsistent) > 0
    {
        exitAtOnce(number)
    }
    if let info, info.pointee.si_code == signalFromKernel { return }
    let pid = target.load(ordering: .sequentiallyConsistent)
    if pid > 0 {
        kill(pid, number)
    } else {
        _ = pending.loadThenBitwiseOr(with: 1 << UInt64(number), ordering: .sequentiallyConsistent)
    }
}

/// Runs in the signal handler, on a second SIGINT or SIGTERM: ends the command and this process.
private func exitAtOnce(_ number: Int32) -> Never {
    // A static string: its bytes are in the binary, so nothing is allocated or initialized lazily here.
    let message: StaticString = "tapedeck: second signal, exiting now\n"
    _ = write(2, message.utf8Start, message.utf8CodeUnitCount)
    #if os(Linux)
    // The command's parent-death signal kills it as this process ends. Killing it here first would let the thread
    // that waits for it see it die and end the process with the command's status, before this `_exit` runs.
    #else
    let pid = target.load(ordering: .sequentiallyConsistent)
    if pid > 0 { kill(pid, SIGKILL) }
    #endif
    _exit(128 + number)
}
