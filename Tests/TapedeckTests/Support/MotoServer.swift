import Foundation

@testable import Tapedeck

/// A real moto server (AWS APIs in one process, S3 among them) on a free loopback port, started for one test and
/// stopped by its PID. Nothing it stores outlives it.
final class MotoServer: Sendable {
    /// The `python3` that runs it: one that imports `moto.server` and `boto3`.
    static var python: String? { PythonFixture.pythonWithAWS }
    static var isInstalled: Bool { python != nil }

    let port: Int
    private let process: ChildProcess
    private let directory: TemporaryDirectory

    /// Where clients send requests: `http://127.0.0.1:PORT`.
    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// Starts the server and waits until it answers HTTP, for at most `timeout` (moto takes a second or two to
    /// import).
    init(timeout: Duration = .seconds(60)) async throws {
        guard let python = Self.python else { throw TestProcessError("moto[server] is not installed") }
        let directory = try TemporaryDirectory()
        self.directory = directory
        do {
            (port, process) = try await startListening(timeout: timeout) { port in
                try ChildProcess(
                    [python, "-m", "moto.server", "-H", "127.0.0.1", "-p", "\(port)"],
                    outputPath: directory.path("server.log"),
                    // Credentials or a region of the machine's own must not reach the server.
                    environment: ["AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"]
                )
            }
        } catch {
            let log = (try? String(contentsOfFile: directory.path("server.log"), encoding: .utf8)) ?? ""
            throw TestProcessError("moto did not start: \(error): \(log.suffix(800))")
        }
        try await Self.waitUntilAnswering(port: port, timeout: timeout)
    }

    /// Stops the server by its PID.
    func stop() {
        process.stop(SIGTERM)
    }

    deinit { stop() }

    /// Waits until a request gets an HTTP status line back: listening is not yet serving.
    private static func waitUntilAnswering(port: Int, timeout: Duration) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        var lastError = ""
        while ContinuousClock.now < deadline {
            do {
                let connection = try BlockingConnection(to: .tcp(host: "127.0.0.1", port: port), timeout: .seconds(5))
                try connection.send("GET /moto-api/data.json HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
                let status = try connection.receive(count: 12)
                if status.hasPrefix("HTTP/1.") { return }
                lastError = "answered \(status.debugDescription)"
            } catch {
                lastError = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestProcessError("moto on port \(port) did not answer in time: \(lastError)")
    }
}
