import Foundation

/// The UDP and DNS servers and clients under `fixtures/`.
///
/// ```swift
/// let echo = try await PythonFixture.udpEchoServer()
/// defer { echo.stop() }
/// let run = try PythonFixture.udpClient(port: echo.port, sizes: [1, 1_400])
/// #expect(run.stdout == "sent 1 echo same\nsent 1400 echo same\n")
/// ```
extension PythonFixture {
    /// A `python3` that can import dnspython (`.ci/run` installs it with pip), for `clients/dns_queries.py`.
    static let pythonWithDNS = interpreter(importing: ["dns.message", "dns.query"])

    /// `clients/dns_queries.py`: asks `questions` (`NAME/TYPE`) of 127.0.0.1:`port`, each with a random transaction
    /// id, from `concurrency` resolvers at once, each on a socket of its own (over TCP with `tcp`), names in a
    /// random letter case with `mixedCase`, waiting `wait` seconds at most for each answer. Prints a canonical line
    /// per answer (see ``DnsmasqServer/answers``).
    static func dnsQueries(
        port: Int,
        _ questions: [String],
        concurrency: Int = 1,
        tcp: Bool = false,
        mixedCase: Bool = false,
        wait: Double = 3,
        timeout: Duration = .seconds(60)
    ) throws -> Run {
        let options =
            ["--concurrency", "\(concurrency)", "--timeout", "\(wait)"] + (tcp ? ["--tcp"] : [])
            + (mixedCase ? ["--mixed-case"] : [])
        return try run(
            "clients/dns_queries.py",
            ["\(port)"] + questions + options,
            python: pythonWithDNS,
            timeout: timeout
        )
    }

    /// `clients/udp_client.py`: sends a datagram of each of `sizes` (a fixed pattern), then each of `texts`, from one
    /// socket to 127.0.0.1:`port`, waiting up to `wait` seconds for each echo and `gap` seconds between datagrams.
    /// Prints `sent N echo same` (or `echo differs`, `no answer`) per datagram.
    static func udpClient(
        port: Int,
        sizes: [Int] = [],
        texts: [String] = [],
        wait: Double = 3,
        gap: Double = 0
    ) throws -> Run {
        let arguments =
            ["\(port)", "--timeout", "\(wait)", "--gap", "\(gap)"] + sizes.flatMap { ["--size", "\($0)"] }
            + texts.flatMap { ["--text", $0] }
        return try run("clients/udp_client.py", arguments, timeout: .seconds(60))
    }

    /// `clients/statsd_sender.py`: `count` distinct statsd-like datagrams to 127.0.0.1:`port` from one socket, at
    /// `rate` a second, answered by nothing. Prints `sent COUNT BYTES`.
    static func statsdSender(port: Int, count: Int, rate: Int) throws -> Run {
        try run(
            "clients/statsd_sender.py",
            ["\(port)", "--count", "\(count)", "--rate", "\(rate)"],
            timeout: .seconds(60)
        )
    }

    /// `servers/udp_echo.py` on a free loopback UDP port: every datagram sent back whole; stopped by its PID.
    static func udpEchoServer(timeout: Duration = .seconds(20)) async throws -> ScriptServer {
        try await ScriptServer(
            python: PythonFixture.python,
            missing: "no python3",
            script: "servers/udp_echo.py",
            timeout: timeout
        )
    }

    /// `servers/udp_sink.py` on a free loopback UDP port: counts datagrams, answers none, and reports once it has
    /// `expected` of them, or has heard nothing for `idle` seconds since the last; stopped by its PID.
    final class UDPSink: Sendable {
        let port: Int
        private let process: ChildProcess
        private let directory: TemporaryDirectory

        /// What the sink counted.
        struct Count: Sendable, Equatable {
            var datagrams: Int
            var distinct: Int
            var bytes: Int
        }

        init(expected: Int, idle: Double = 5, timeout: Duration = .seconds(20)) async throws {
            guard let python = PythonFixture.python else { throw TestProcessError("no python3") }
            directory = try TemporaryDirectory()
            (process, port) = try await PythonFixture.startServer(
                python: python,
                script: "servers/udp_sink.py",
                ["0", "--expect", "\(expected)", "--idle", "\(idle)"],
                directory: directory,
                timeout: timeout
            )
        }

        /// Waits (at most `timeout`) for the sink's report; stops it first if it has not reported by then, and it
        /// reports what it has.
        func count(timeout: Duration) async throws -> Count {
            let deadline = ContinuousClock.now.advanced(by: timeout)
            while process.isRunning, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            process.stop(SIGTERM)
            let output = (try? String(contentsOfFile: directory.path("stdout"), encoding: .utf8)) ?? ""
            guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("received ") }) else {
                throw TestProcessError("udp_sink.py reported nothing: \(output)")
            }
            // received COUNT distinct DISTINCT bytes BYTES
            let numbers = line.split(separator: " ").compactMap { Int($0) }
            guard numbers.count == 3 else { throw TestProcessError("udp_sink.py said '\(line)'") }
            return Count(datagrams: numbers[0], distinct: numbers[1], bytes: numbers[2])
        }

        /// Stops the sink by its PID.
        func stop() {
            process.stop(SIGTERM)
        }

        deinit { stop() }
    }
}
