import Foundation
import NIOCore
import NIOPosix

@testable import Tapedeck

#if canImport(Glibc)
import Glibc
#endif

/// A child process started like `tapedeck run` starts its command (`ChildCommand`): a clean signal mask,
/// default signal handlers and none of our descriptors, with its output going to files; on Linux it dies with
/// the test process.
///
/// Foundation's `Process` hands the child the spawning thread's signal mask, and test threads may block
/// SIGTERM and SIGINT: a server started that way cannot be stopped politely. This one can, by its PID. And the
/// test process holds many sockets, which a server must not inherit (PostgreSQL refuses to start when too few
/// descriptors are left).
final class ChildProcess: Sendable {
    let pid: pid_t
    let outputPath: String
    /// Reaps the process and signals it only while it has not been reaped: its pid may be reused afterwards.
    private let command: ChildCommand

    /// Starts `arguments[0]` (a full path) with the rest as arguments; stdout goes to `outputPath`, stderr to
    /// `errorPath` (or also to `outputPath`); stdin comes from `standardInput`. `environment` sets (or, with nil,
    /// removes) variables of ours.
    init(
        _ arguments: [String],
        outputPath: String = "/dev/null",
        errorPath: String? = nil,
        environment: [String: String?] = [:],
        standardInput: String = "/dev/null"
    ) throws {
        self.outputPath = outputPath
        var variables = ProcessInfo.processInfo.environment
        for (name, value) in environment { variables[name] = value }
        let output = ChildCommand.Redirection.Target.file(path: outputPath, flags: O_WRONLY | O_CREAT | O_APPEND)
        let command = try ChildCommand(
            executable: arguments[0],
            arguments: arguments,
            environment: variables,
            redirections: [
                .init(descriptor: 0, target: .file(path: standardInput, flags: O_RDONLY)),
                .init(descriptor: 1, target: output),
                .init(
                    descriptor: 2,
                    target: errorPath.map { .file(path: $0, flags: O_WRONLY | O_CREAT | O_APPEND) } ?? .descriptor(1)
                ),
            ]
        )
        self.command = command
        pid = command.pid
    }

    /// The exit status (128 + signal for a killed process), once the process has exited.
    var exitStatus: Int32? { command.exitStatusIfExited }

    /// Sends `signal` unless the process has exited.
    func signal(_ signal: Int32) { command.signal(signal) }

    /// Whether the process is still running (reaping it if it has exited).
    var isRunning: Bool { exitStatus == nil }

    /// Sends `signal` and waits up to `timeout` for the process to exit; then kills it.
    func stop(_ signal: Int32 = SIGTERM, timeout: Duration = .seconds(10)) {
        guard isRunning else { return }
        command.signal(signal)
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while isRunning {
            if ContinuousClock.now >= deadline {
                command.signal(SIGKILL)
                while isRunning { usleep(1_000) }
                return
            }
            usleep(10_000)
        }
    }

    /// Runs a command to completion (at most `timeout`) and returns its exit status and output. `environment` sets
    /// (or, with nil, removes) variables of ours.
    static func run(
        _ arguments: [String],
        environment: [String: String?] = [:],
        timeout: Duration = .seconds(60)
    ) throws -> (status: Int32, output: String) {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("out-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let child = try ChildProcess(arguments, outputPath: output, environment: environment)
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

/// Waits, for at most `timeout`, until 127.0.0.1:`port` accepts connections while `server` runs: the port was
/// found free a moment before, and ``FreePort`` never hands it out twice in this process.
///
/// - Returns: `false` if the server exited first (it could not bind, say), so the caller can try another port.
func waitUntilListening(_ server: ChildProcess, port: Int, timeout: Duration = .seconds(20)) async throws -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        // Running after the connect too: kill(pid, 0) succeeds on a process that has exited but is not yet reaped.
        if ListeningSockets.process(server.pid, listensOn: port), server.isRunning { return true }
        if !server.isRunning { return false }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TestProcessError("process \(server.pid) did not listen on port \(port) in time")
}

/// Starts a server on a fresh free port, trying another port when the server could not bind the first.
func startListening(
    attempts: Int = 5,
    timeout: Duration = .seconds(20),
    _ start: (Int) throws -> ChildProcess
) async throws -> (port: Int, server: ChildProcess) {
    for _ in 0..<attempts {
        let port = try await FreePort.find()
        let server = try start(port)
        if try await waitUntilListening(server, port: port, timeout: timeout) { return (port, server) }
        server.stop()
    }
    throw TestProcessError("the server exited \(attempts) times before listening")
}

/// Whether a process listens on a TCP port: a connect to it succeeds while the process runs.
///
/// The port came from ``FreePort``, free a moment before, so a listener on it is the process's. The kernel's
/// socket table would name the listener's process too, but after a busy run it holds tens of thousands of
/// TIME_WAIT sockets (megabytes): reading it every 50 ms for several servers at once starved the machine.
enum ListeningSockets {
    static func process(_ pid: pid_t, listensOn port: Int) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = loopbackAddress(port: port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        return connected == 0
    }
}

/// 127.0.0.1:`port`, for the plain socket calls of test helpers.
func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}

/// Runs blocking work (a client process waited for) on a thread of its own, so that it does not hold one of Swift
/// concurrency's few cooperative threads: on two cores, two tests waiting for processes that way stalled every
/// other test's awaits for seconds.
func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}
