import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A thread of its own that starts a child process, waits for it to exit, and keeps its exit status.
///
/// Starting the child on this thread rather than on the caller's matters on Linux: the child's parent-death
/// signal (see ``ChildCommand``) fires when the thread that forked it exits, and a thread of Swift's cooperative
/// pool, or any thread that goes on to other work, may exit long before the child does. This one exits only once
/// the child has.
final class ChildReaper: Sendable {
    /// The child's process id.
    let pid: pid_t

    private enum State {
        case running(waiters: [CheckedContinuation<Int32, Never>])
        case exited(Int32)
    }

    private let state: NIOLockedValueBox<State>

    private init(pid: pid_t, state: NIOLockedValueBox<State>) {
        self.pid = pid
        self.state = state
    }

    /// Runs `spawn` on a new thread and returns once it has: with the child it started, or throwing its error.
    /// The thread then waits for the child.
    static func start(_ spawn: @escaping @Sendable () throws -> pid_t) throws -> ChildReaper {
        let state = NIOLockedValueBox(State.running(waiters: []))
        let started = NIOLockedValueBox<Result<pid_t, any Error>?>(nil)
        let startedSignal = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let result = Result { try spawn() }
            started.withLockedValue { $0 = result }
            startedSignal.signal()
            if case .success(let pid) = result { wait(for: pid, state: state) }
        }
        // Blocks the caller only as long as a fork and an exec take, as posix_spawn does.
        startedSignal.wait()
        guard let result = started.withLockedValue({ $0 }) else { preconditionFailure("spawn thread ended early") }
        return ChildReaper(pid: try result.get(), state: state)
    }

    /// Waits for the child to exit and returns its status as a shell reports it: the exit code, or 128 plus the
    /// number of the signal that killed it.
    func exitStatus() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status: Int32? = state.withLockedValue { state in
                switch state {
                case .exited(let status):
                    return status
                case .running(var waiters):
                    waiters.append(continuation)
                    state = .running(waiters: waiters)
                    return nil
                }
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// The exit status, if the child has exited.
    var exitStatusIfExited: Int32? {
        state.withLockedValue { state in
            if case .exited(let status) = state { return status }
            return nil
        }
    }

    /// Sends `signal` to the child unless it has exited: its pid may then belong to another process.
    func signal(_ signal: Int32) {
        state.withLockedValue { state in
            // Under the lock that the reaping also holds: the pid cannot be freed between the check and the kill.
            if case .running = state { kill(pid, signal) }
        }
    }

    /// On the reaper thread: waits until the child has exited, then reaps it and records its status.
    private static func wait(for pid: pid_t, state: NIOLockedValueBox<State>) {
        // WNOWAIT leaves the child a zombie, so its pid stays ours until the status is recorded under the lock
        // that `signal(_:)` takes.
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 {
            guard errno == EINTR else { break }
        }
        let waiters: [CheckedContinuation<Int32, Never>]
        let status: Int32
        (waiters, status) = state.withLockedValue { state in
            var raw: Int32 = 0
            var reaped: pid_t
            repeat { reaped = waitpid(pid, &raw, 0) } while reaped < 0 && errno == EINTR
            let signal = raw & 0x7F
            let status: Int32 = reaped < 0 ? 127 : signal != 0 ? 128 + signal : (raw >> 8) & 0xFF
            var waiters: [CheckedContinuation<Int32, Never>] = []
            if case .running(let pending) = state { waiters = pending }
            state = .exited(status)
            return (waiters, status)
        }
        for waiter in waiters { waiter.resume(returning: status) }
    }
}
