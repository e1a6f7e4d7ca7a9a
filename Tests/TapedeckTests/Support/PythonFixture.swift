import Foundation

/// The Python servers and clients under `fixtures/` for end-to-end tests, run with a `python3` that has what each
/// needs, their stdout and stderr kept apart.
///
/// ```swift
/// let server = try await PythonFixture.echoServer()
/// defer { server.stop() }
/// let run = try PythonFixture.requestIDClient(port: server.port, count: 3)
/// #expect(run.stdout == "ok 3\n")
/// ```
enum PythonFixture {
    /// The repository's `fixtures` directory.
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures")

    /// A `python3` (its real executable, not a shim) for the scripts that need only the standard library.
    static let python = interpreter(importing: [])

    /// A `python3` that can import moto's server and boto3 (`.ci/run` installs them with pip), for the S3 client
    /// and `MotoServer`.
    static let pythonWithAWS = interpreter(importing: ["moto.server", "boto3"])

    /// A `python3` that can import aiosmtpd (`.ci/run` installs it with pip), for `SMTPServer`.
    static let pythonWithSMTP = interpreter(importing: ["aiosmtpd"])

    /// A `python3` that can import Toxiproxy's own client, toxiproxy-python (`.ci/run` installs it with pip), for
    /// the control API's end-to-end tests.
    static let pythonWithToxiproxy = interpreter(importing: ["toxiproxy", "requests"])

    /// A `python3` that can import grpcio (`.ci/run` installs it with pip), for `GRPCServer` and `grpcCalls`.
    static let pythonWithGRPC = interpreter(importing: ["grpc"])

    /// How a script ran.
    struct Run: Sendable, CustomStringConvertible {
        var status: Int32
        var stdout: String
        var stderr: String

        var description: String { "exit \(status)\nstdout:\n\(stdout)\nstderr:\n\(stderr.suffix(2_000))" }
    }

    /// Runs `fixtures/<script>` with `arguments` to completion, for at most `timeout`; kills it (by its PID)
    /// when it overstays.
    static func run(
        _ script: String,
        _ arguments: [String],
        python: String? = PythonFixture.python,
        environment: [String: String?] = [:],
        timeout: Duration = .seconds(60)
    ) throws -> Run {
        guard let python else { throw TestProcessError("no python3 for \(script)") }
        let directory = try TemporaryDirectory()
        let child = try ChildProcess(
            [python, Self.directory.appendingPathComponent(script).path] + arguments,
            outputPath: directory.path("stdout"),
            errorPath: directory.path("stderr"),
            environment: environment
        )
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while child.isRunning {
            if ContinuousClock.now >= deadline {
                child.stop(SIGKILL, timeout: .seconds(5))
                throw TestProcessError("\(script) \(arguments.joined(separator: " ")) timed out")
            }
            usleep(5_000)
        }
        return Run(
            status: child.exitStatus ?? -1,
            stdout: (try? String(contentsOfFile: directory.path("stdout"), encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: directory.path("stderr"), encoding: .utf8)) ?? ""
        )
    }

    /// `clients/request_id_client.py`: `count` GET requests over one keep-alive connection to `port`, each with a
    /// fresh UUID as `X-Request-Id`, each answer checked for its own id. Prints `ok COUNT` when all are.
    static func requestIDClient(port: Int, count: Int, timeout: Duration = .seconds(60)) throws -> Run {
        try run("clients/request_id_client.py", ["\(port)", "\(count)"], timeout: timeout)
    }

    /// `clients/s3_client.py` against `endpoint` (`http://127.0.0.1:PORT`): creates `bucket`, puts two objects,
    /// gets them and lists them, printing ``s3Summary(bucket:)``. No retries, short timeouts.
    static func s3Client(
        endpoint: String,
        bucket: String = "tapedeck-fixture",
        timeout: Duration = .seconds(60)
    )
        throws -> Run
    {
        try run("clients/s3_client.py", [endpoint, bucket], python: pythonWithAWS, timeout: timeout)
    }

    /// What `clients/s3_client.py` prints when every call succeeds.
    static func s3Summary(bucket: String = "tapedeck-fixture") -> String {
        """
        bucket \(bucket)
        put greeting.txt 20
        put data/numbers.csv 12
        get greeting.txt 20 "hello from tapedeck\\n"
        get data/numbers.csv 12 "1,2,3\\n4,5,6\\n"
        list data/numbers.csv 12
        list greeting.txt 20

        """
    }

    /// `clients/smtp_starttls_client.py`: one message to `port` after STARTTLS, trusting only the certificates in
    /// `authority` and checking the server's against `host`. Prints a line per reply, then `ok`.
    static func smtpClient(
        port: Int,
        authority: String,
        host: String = "localhost",
        timeout: Duration = .seconds(60)
    ) throws -> Run {
        try run("clients/smtp_starttls_client.py", ["\(port)", authority, host], timeout: timeout)
    }

    /// `clients/grpc_calls.py`: `workers` threads sharing `channels` grpcio channels (default options, so bandwidth
    /// probes on) call every method of `servers/grpc_echo.py` on `port` with a deadline, and print a line per call.
    static func grpcCalls(port: Int, workers: Int, channels: Int, timeout: Duration = .seconds(90)) throws -> Run {
        try run(
            "clients/grpc_calls.py",
            ["\(port)", "--workers", "\(workers)", "--channels", "\(channels)", "--deadline", "20"],
            python: pythonWithGRPC,
            timeout: timeout
        )
    }

    /// What `clients/grpc_calls.py` prints for worker `worker` when every call is answered as the service answers.
    static func grpcAnswers(worker: Int) -> String {
        let name = "w" + (worker < 10 ? "0" : "") + "\(worker)"
        return """
            \(name) Say said:hello \(name)
            \(name) Count \(name) 1/3|\(name) 2/3|\(name) 3/3
            \(name) Sum \(name)+two+three
            \(name) Chat chat:\(name)-a|chat:\(name)-b
            \(name) Fail NOT_FOUND no \(name)

            """
    }

    /// `servers/grpc_echo.py` on a free loopback port: a gRPC service with unary, streaming and failing methods,
    /// without TLS; stopped by its PID.
    static func grpcServer(timeout: Duration = .seconds(20)) async throws -> ScriptServer {
        try await ScriptServer(
            python: PythonFixture.pythonWithGRPC,
            missing: "no python3 with grpcio",
            script: "servers/grpc_echo.py",
            timeout: timeout
        )
    }

    /// A fixture server script on a free loopback port (it binds port 0 and prints `listening PORT`), stopped by
    /// its PID: what `grpcServer()`, `echoServer()` and the other servers without options of their own return.
    final class ScriptServer: Sendable {
        let port: Int
        private let process: ChildProcess
        private let directory: TemporaryDirectory

        /// Starts `fixtures/<script>` with `python`; `missing` says what is lacking when there is none.
        init(python: String?, missing: String, script: String, timeout: Duration) async throws {
            guard let python else { throw TestProcessError(missing) }
            directory = try TemporaryDirectory()
            (process, port) = try await PythonFixture.startServer(
                python: python,
                script: script,
                ["0"],
                directory: directory,
                timeout: timeout
            )
        }

        /// Stops the server by its PID.
        func stop() {
            process.stop(SIGTERM)
        }

        deinit { stop() }
    }

    /// A `python3` that can import hypercorn (`.ci/run` installs it with pip), for `H2CUpgradeServer`.
    static let pythonWithHypercorn = interpreter(importing: ["hypercorn"])

    /// `servers/h2c_upgrade.py` on a free loopback port: hypercorn, which accepts `Upgrade: h2c`, answering each
    /// request with its method, path, HTTP version and body; stopped by its PID.
    static func h2cUpgradeServer(timeout: Duration = .seconds(20)) async throws -> ScriptServer {
        try await ScriptServer(
            python: PythonFixture.pythonWithHypercorn,
            missing: "no python3 with hypercorn",
            script: "servers/h2c_upgrade.py",
            timeout: timeout
        )
    }

    /// `servers/echo_request_id.py` on a free loopback port (it binds port 0 and says which it got), answering
    /// each request with its `X-Request-Id` in a JSON body and a header; stopped by its PID.
    static func echoServer(timeout: Duration = .seconds(20)) async throws -> ScriptServer {
        try await ScriptServer(
            python: PythonFixture.python,
            missing: "no python3",
            script: "servers/echo_request_id.py",
            timeout: timeout
        )
    }

    /// `servers/smtp_starttls.py` on a free loopback port: aiosmtpd offering STARTTLS with a PEM certificate and
    /// key, and refusing mail until the client has started TLS; stopped by its PID.
    final class SMTPServer: Sendable {
        let port: Int
        private let process: ChildProcess
        private let directory: TemporaryDirectory

        init(certificate: String, key: String, timeout: Duration = .seconds(20)) async throws {
            guard let python = PythonFixture.pythonWithSMTP else { throw TestProcessError("no python3 with aiosmtpd") }
            directory = try TemporaryDirectory()
            (process, port) = try await PythonFixture.startServer(
                python: python,
                script: "servers/smtp_starttls.py",
                ["0", certificate, key],
                directory: directory,
                timeout: timeout
            )
        }

        /// The `message FROM TO BYTES` lines the server printed, one per message it took.
        var messages: [String] {
            let output = (try? String(contentsOfFile: directory.path("stdout"), encoding: .utf8)) ?? ""
            return output.split(separator: "\n").filter { $0.hasPrefix("message ") }.map(String.init)
        }

        /// Stops the server by its PID.
        func stop() {
            process.stop(SIGTERM)
        }

        deinit { stop() }
    }

    /// Starts a server script that binds port 0 and prints `listening PORT`, and waits (at most `timeout`) for that
    /// line; its stdout and stderr go to `directory`.
    static func startServer(
        python: String,
        script: String,
        _ arguments: [String],
        directory: TemporaryDirectory,
        timeout: Duration
    ) async throws -> (ChildProcess, Int) {
        let process = try ChildProcess(
            [python, Self.directory.appendingPathComponent(script).path] + arguments,
            outputPath: directory.path("stdout"),
            errorPath: directory.path("stderr")
        )
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            let output = (try? String(contentsOfFile: directory.path("stdout"), encoding: .utf8)) ?? ""
            if let line = output.split(separator: "\n").first(where: { $0.hasPrefix("listening ") }),
                let port = Int(line.dropFirst("listening ".count))
            {
                return (process, port)
            }
            guard process.isRunning, ContinuousClock.now < deadline else {
                process.stop(SIGKILL, timeout: .seconds(5))
                let errors = (try? String(contentsOfFile: directory.path("stderr"), encoding: .utf8)) ?? ""
                throw TestProcessError("\(script) did not start: \(errors.suffix(800))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The first `python3` on `PATH` (or in /usr/bin, /usr/local/bin) that imports `modules`, as the executable
    /// it really is: a pyenv shim is a script, and the tests hold PIDs.
    static func interpreter(importing modules: [String]) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        var candidates =
            path.split(separator: ":").map { "\($0)/python3" } + ["/usr/bin/python3", "/usr/local/bin/python3"]
        var seen = Set<String>()
        candidates = candidates.filter { seen.insert($0).inserted && FileManager.default.isExecutableFile(atPath: $0) }
        let script = (["sys"] + modules).map { "import \($0)" }.joined(separator: "; ") + "; print(sys.executable)"
        for candidate in candidates {
            guard let result = try? ChildProcess.run([candidate, "-c", script], timeout: .seconds(60)),
                result.status == 0
            else { continue }
            // The last line: an import may print warnings first.
            let executable = result.output.split(separator: "\n").last.map(String.init) ?? ""
            if FileManager.default.isExecutableFile(atPath: executable) { return executable }
        }
        return nil
    }
}
