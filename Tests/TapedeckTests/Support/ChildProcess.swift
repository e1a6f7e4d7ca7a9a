import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, a clean signal mask and default signal handlers.
///
/// Foundation's `Process` hands the child the spawning thread's signal mask, and test threads may block
/// SIGTERM and SIGINT: a server started that way cannot be stopped politely. This one can, by its PID.
final class ChildProcess: Sendable {
    let pid: pid_t
    let outputPath: String
    /// The exit status once reaped: never wait on (or signal) a PID twice, the system may have reused it.
    private let reaped = NIOLockedValueBox<Int32?>(nil)

    /// Starts `arguments[0]` (a full path) with the rest as arguments; stdout goes to `outputPath`, stderr to
    /// `errorPath` (or also to `outputPath`). `environment` sets (or, with nil, removes) variables of ours.
    init(
        _ arguments: [String],
        outputPath: String = "/dev/null",
        errorPath: String? = nil,
        environment: [String: String?] = [:]
    ) throws {
        self.outputPath = outputPath
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGINT, SIGTERM, SIGPIPE, SIGHUP, SIGQUIT] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        if let errorPath {
            posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        // The test process holds many sockets; a server must not inherit them (PostgreSQL refuses to start
        // when too few descriptors are left).
        // glibc 2.34+ has posix_spawn_file_actions_addclosefrom_np, which Swift's Glibc module does not import.
        if let symbol = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") {
            typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
            _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
        }

        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        var variables = ProcessInfo.processInfo.environment
        for (name, value) in environment { variables[name] = value }
        var envp: [UnsafeMutablePointer<CChar>?] = variables.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, arguments[0], &actions, &attributes, &argv, &envp)
        guard status == 0 else {
            throw TestProcessError("cannot start \(arguments[0]): \(String(cString: strerror(status)))")
        }
        pid = child
    }

    /// The exit status (128 + signal for a killed process), once the process has exited; reaps it.
    var exitStatus: Int32? {
        reaped.withLockedValue { reaped in
            if let reaped { return reaped }
            var raw: Int32 = 0
            guard waitpid(pid, &raw, WNOHANG) == pid else { return nil }
            let signal = raw & 0x7F
            reaped = signal != 0 ? 128 + signal : (raw >> 8) & 0xFF
            return reaped
        }
    }

    /// Whether the process is still running (reaping it if it has exited).
    var isRunning: Bool { exitStatus == nil }

    /// Sends `signal` and waits up to `timeout` for the process to exit; then kills it.
    func stop(_ signal: Int32 = SIGTERM, timeout: Duration = .seconds(10)) {
        guard isRunning else { return }
        kill(pid, signal)
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while isRunning {
            if ContinuousClock.now >= deadline {
                kill(pid, SIGKILL)
                while isRunning { usleep(1_000) }
                return
            }
            usleep(10_000)
        }
    }

    /// Runs a command to completion (at most `timeout`) and returns its exit status and output.
    static func run(_ arguments: [String], timeout: Duration = .seconds(60)) throws -> (status: Int32, output: String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("out-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let child = try ChildProcess(arguments, outputPath: output)
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            if let status = child.exitStatus {
                return (status, (try? String(contentsOfFile: output, encoding: .utf8)) ?? "")
            }
            if ContinuousClock.now >= deadline {
                child.stop(SIGKILL, timeout: .seconds(5))
                throw TestProcessError("\(arguments.joined(separator: " ")) timed out")
            }
            usleep(5_000)
        }
    }

    deinit { stop(SIGKILL, timeout: .seconds(2)) }
}

/// Waits until something accepts TCP connections on `port`, for at most `timeout`.
func waitForPort(_ port: Int, timeout: Duration = .seconds(20)) async throws {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        // A plain channel: an unused NIOAsyncChannel would trap when its writer is dropped unfinished.
        if let channel = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(1))
            .connect(host: "127.0.0.1", port: port).get()
        {
            try? await channel.close()
            return
        }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TestProcessError("nothing listened on port \(port) in time")
}
