import Foundation
import NIOConcurrencyHelpers

@testable import Tapedeck

/// The real `tapedeck` executable as a child process, for exit codes, signals and memory.
final class TapedeckProcess: Sendable {
    private let process: Process
    private let stdoutText = NIOLockedValueBox("")
    private let stderrText = NIOLockedValueBox("")

    /// The built executable, next to the test bundle.
    static var executable: URL {
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = testBinary.deletingLastPathComponent()
        // On Linux the tests run from `.build/debug/<package>PackageTests.xctest`, a file beside `tapedeck`.
        if directory.pathExtension == "xctest" { directory = directory.deletingLastPathComponent() }
        return directory.appendingPathComponent("tapedeck")
    }

    init(_ arguments: [String]) throws {
        process = Process()
        process.executableURL = Self.executable
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        Self.collect(out.fileHandleForReading, into: stdoutText)
        Self.collect(err.fileHandleForReading, into: stderrText)
        try process.run()
    }

    private static func collect(_ handle: FileHandle, into box: NIOLockedValueBox<String>) {
        handle.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
            } else {
                box.withLockedValue { $0 += String(decoding: data, as: UTF8.self) }
            }
        }
    }

    var pid: Int32 { process.processIdentifier }
    var stdout: String { stdoutText.withLockedValue { $0 } }
    var stderr: String { stderrText.withLockedValue { $0 } }

    /// Runs to completion (at most `timeout`) and returns the exit status and output.
    static func run(_ arguments: [String], timeout: Duration = .seconds(30)) async throws -> (status: Int32, stdout: String, stderr: String) {
        let child = try TapedeckProcess(arguments)
        let status = try await child.waitForExit(timeout: timeout)
        // Let the pipe readers catch the last bytes.
        try await Task.sleep(for: .milliseconds(50))
        return (status, child.stdout, child.stderr)
    }

    /// Waits until stdout holds `count` `listening` lines and returns their addresses by route name.
    func waitForListening(count: Int = 1, timeout: Duration = .seconds(20)) async throws -> [String: Endpoint] {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            let lines = stdout.split(separator: "\n").filter { $0.hasPrefix("listening ") }
            if lines.count >= count {
                var routes: [String: Endpoint] = [:]
                for line in lines {
                    let parts = line.split(separator: " ", maxSplits: 2).map(String.init)
                    routes[parts[1]] = try Endpoint(parsing: parts[2])
                }
                return routes
            }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TimeoutError()
    }

    func signal(_ number: Int32) {
        kill(process.processIdentifier, number)
    }

    /// Waits for the process to exit and returns its status; kills it (by its PID) if it overstays.
    func waitForExit(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                kill(process.processIdentifier, SIGKILL)
                throw TimeoutError()
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    /// The exit status, once the process has exited.
    var exitStatus: Int32? {
        process.isRunning ? nil : process.terminationStatus
    }

    /// The process's peak resident memory in bytes, from `/proc`.
    var peakResidentBytes: Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kib = line.split(separator: " ").compactMap { Int($0) }.first
            return kib.map { $0 * 1024 }
        }
        return nil
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
    }
}
