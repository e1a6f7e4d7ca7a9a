import Foundation
import NIOConcurrencyHelpers

@testable import Tapedeck

/// The real `tapedeck` executable as a child process, for exit codes, signals and memory.
///
/// Started like `tapedeck run` starts its command (see `ChildProcess`), its output going to files: Foundation's `Process` keeps run
/// loops and dispatch sources of its own, which is more machinery than a test on two cores needs.
final class TapedeckProcess: Sendable {
    private let child: ChildProcess
    private let directory: String

    /// The built executable, next to the test bundle; `TAPEDECK_TEST_EXECUTABLE` names another one, to run the
    /// process tests against an older build and see which of them it fails.
    static var executable: URL {
        if let other = ProcessInfo.processInfo.environment["TAPEDECK_TEST_EXECUTABLE"] {
            return URL(fileURLWithPath: other)
        }
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var directory = testBinary.deletingLastPathComponent()
        // On Linux the tests run from `.build/debug/<package>PackageTests.xctest`, a file beside `tapedeck`.
        if directory.pathExtension == "xctest" { directory = directory.deletingLastPathComponent() }
        return directory.appendingPathComponent("tapedeck")
    }

    /// - Parameter standardOutput: Where stdout goes instead of a file of its own (`/dev/full`, say).
    init(_ arguments: [String], environment: [String: String?] = [:], standardOutput: String? = nil) throws {
        directory =
            FileManager.default.temporaryDirectory.appendingPathComponent("tapedeck-process-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        child = try ChildProcess(
            [Self.executable.path] + arguments,
            outputPath: standardOutput ?? directory + "/stdout",
            errorPath: directory + "/stderr",
            environment: environment
        )
    }

    var pid: Int32 { child.pid }
    var stdout: String { (try? String(contentsOfFile: directory + "/stdout", encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: directory + "/stderr", encoding: .utf8)) ?? "" }

    /// Runs to completion (at most `timeout`) and returns the exit status and output.
    static func run(
        _ arguments: [String],
        environment: [String: String?] = [:],
        standardOutput: String? = nil,
        timeout: Duration = .seconds(30)
    ) async throws -> (status: Int32, stdout: String, stderr: String) {
        let child = try TapedeckProcess(arguments, environment: environment, standardOutput: standardOutput)
        let status = try await child.waitForExit(timeout: timeout)
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
            if exitStatus != nil { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TimeoutError()
    }

    func signal(_ number: Int32) {
        child.signal(number)
    }

    /// The exit status, once the process has exited (128 + signal if a signal ended it, as a shell says).
    var exitStatus: Int32? { child.exitStatus }

    /// Waits for the process to exit and returns its status; kills it (by its PID) if it overstays.
    func waitForExit(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            if let status = exitStatus { return status }
            if ContinuousClock.now >= deadline {
                child.signal(SIGKILL)
                throw TimeoutError()
            }
            try await Task.sleep(for: .milliseconds(10))
        }
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
        child.stop(SIGKILL, timeout: .seconds(5))
        try? FileManager.default.removeItem(atPath: directory)
    }
}
