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

/// Waits until something accepts TCP connections on `port`, for at most `timeout`.
/// Waits until `server` itself listens on 127.0.0.1:`port`. Something else answering there does not count: a
/// port found free a moment ago may have gone to another test's listener before the server could bind it.
///
/// - Returns: `false` if the server exited first (it could not bind, say), so the caller can try another port.
func waitUntilListening(_ server: ChildProcess, port: Int, timeout: Duration = .seconds(20)) async throws -> Bool {
    let deadline = ContinuousClock.now.advanced(by: timeout)
    while ContinuousClock.now < deadline {
        if ListeningSockets.process(server.pid, listensOn: port) { return true }
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

/// Whether a process listens on a TCP port, from the kernel's socket table and the process's descriptors.
enum ListeningSockets {
    static func process(_ pid: pid_t, listensOn port: Int) -> Bool {
        // The table holds every socket of the machine, TIME_WAIT ones included: megabytes after a busy test run.
        // Only the lines of listeners on the port are picked out, by their bytes, rather than parsing them all.
        guard let table = try? Data(contentsOf: URL(fileURLWithPath: "/proc/net/tcp")) else { return false }
        let listener = Data(String(format: ":%04X 00000000:0000 0A ", port).utf8)
        var sockets = Set<String>()
        var from = table.startIndex
        while let found = table.range(of: listener, in: from..<table.endIndex) {
            var lineStart = found.lowerBound
            while lineStart > table.startIndex, table[lineStart - 1] != UInt8(ascii: "\n") { lineStart -= 1 }
            let lineEnd = table[found.upperBound...].firstIndex(of: UInt8(ascii: "\n")) ?? table.endIndex
            // Columns: sl, local_address, rem_address, st (0A is LISTEN), ..., inode (the tenth).
            let columns = String(decoding: table[lineStart..<lineEnd], as: UTF8.self).split(separator: " ")
            if columns.count > 9 { sockets.insert("socket:[\(columns[9])]") }
            from = found.upperBound
        }
        guard !sockets.isEmpty else { return false }
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        return descriptors.contains { descriptor in
            let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(descriptor)")
            return link.map(sockets.contains) ?? false
        }
    }
}
