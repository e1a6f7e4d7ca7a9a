import Foundation
import Testing

@testable import Tapedeck

/// UDP routes with real clients and servers, through the `tapedeck` executable: an echo server with datagrams up
/// to the largest IPv4 holds, a one-way stream of metrics, flows that end when idle, a client that says something
/// new in replay, `tapedeck run`, and the Swift API.
@Suite(.timeLimit(.minutes(3)))
struct UDPEndToEndTests {
    /// The port of an address a `listening` line named, UDP or TCP.
    static func port(of address: Endpoint) throws -> Int {
        switch address {
        case .udp(_, let port), .tcp(_, let port):
            return port
        default:
            throw TestProcessError("\(address) has no port")
        }
    }

    /// Records with `arguments` until `clients` is done (given each route's port by name), then stops the recorder
    /// cleanly; returns the clients' result and the recorder's stderr.
    static func record<T: Sendable>(
        _ arguments: [String],
        routes: Int = 1,
        _ clients: @escaping @Sendable ([String: Int]) throws -> T
    ) async throws -> (T, String) {
        let recorder = try TapedeckProcess(["record"] + arguments)
        let ports = try await recorder.waitForListening(count: routes).mapValues { try port(of: $0) }
        let result = try await offThePool { try clients(ports) }
        recorder.signal(SIGTERM)
        let status = try await recorder.waitForExit(timeout: .seconds(10))
        #expect(status == 0, "\(recorder.stderr)")
        return (result, recorder.stderr)
    }

    /// Replays with `arguments` until `clients` is done (given each route's port), then stops the replayer; returns
    /// the clients' result, the replayer's exit status and its stderr (the summary, and the mismatches).
    static func replay<T: Sendable>(
        _ arguments: [String],
        routes: Int = 1,
        _ clients: @escaping @Sendable ([String: Int]) throws -> T
    ) async throws -> (T, status: Int32, stderr: String) {
        let replayer = try TapedeckProcess(["replay"] + arguments)
        let ports = try await replayer.waitForListening(count: routes).mapValues { try port(of: $0) }
        let result = try await offThePool { try clients(ports) }
        replayer.signal(SIGTERM)
        let status = try await replayer.waitForExit(timeout: .seconds(10))
        return (result, status, replayer.stderr)
    }

    /// The tape's sessions as `tapedeck sessions --json` prints them.
    static func sessions(_ tape: String) async throws -> [[String: Any]] {
        let result = try await TapedeckProcess.run(["sessions", "--json", tape])
        guard result.status == 0 else { throw TestProcessError("tapedeck sessions failed: \(result.stderr)") }
        let parsed = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        return try #require(parsed as? [[String: Any]], "\(result.stdout)")
    }

    /// The tape's `data` events as `tapedeck export --format jsonl` writes them: session, direction, payload.
    static func dataEvents(_ tape: String) async throws -> [(session: Int, direction: String, payload: Data)] {
        let result = try await TapedeckProcess.run(["export", tape, "--format", "jsonl", "--output", "-"])
        guard result.status == 0 else { throw TestProcessError("tapedeck export failed: \(result.stderr)") }
        return try result.stdout.split(separator: "\n").compactMap { line in
            let event = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            guard event["kind"] as? String == "data" else { return nil }
            return (
                try #require(event["session"] as? Int),
                try #require(event["direction"] as? String),
                try #require((event["payload"] as? String).flatMap { Data(base64Encoded: $0) })
            )
        }
    }

    /// `record` arguments for a UDP route to 127.0.0.1:`upstream`.
    static func udpRoute(to upstream: Int, tape: String) -> [String] {
        ["--listen", "udp:127.0.0.1:0", "--upstream", "udp:127.0.0.1:\(upstream)", "--tape", tape]
    }

    /// `replay` arguments for a tape of one UDP route.
    static func udpReplay(_ tape: String) -> [String] {
        ["--listen", "udp:127.0.0.1:0", "--tape", tape]
    }

    /// What the kernel holds for the loopback UDP sockets bound to `port` (`/proc/net/udp`): bytes received and not
    /// yet read, and datagrams dropped for want of room; nil where there is no such file.
    static func kernelQueue(port: Int) -> (unread: Int, drops: Int)? {
        guard let table = try? String(contentsOfFile: "/proc/net/udp", encoding: .utf8) else { return nil }
        let local = String(format: "0100007F:%04X", port)
        var unread = 0
        var drops = 0
        for line in table.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 12, fields[1] == local else { continue }
            unread += fields[4].split(separator: ":").last.flatMap { Int($0, radix: 16) } ?? 0
            drops += Int(fields[fields.count - 1]) ?? 0
        }
        return (unread, drops)
    }

    /// Waits (at most `timeout`) until the process listening on UDP `port` has read every datagram the kernel holds
    /// for it: a client's last datagrams may still be queued when it exits, and a stop then would lose them.
    static func waitUntilRead(port: Int, timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while let queue = kernelQueue(port: port), queue.unread > 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// The `#seq:N` numbers from 0 to `count` - 1 that no statsd datagram among `payloads` carries, as ranges: which
    /// part of a stream went missing.
    static func missingSequenceNumbers(_ payloads: [Data], count: Int) -> [ClosedRange<Int>] {
        var seen = Set<Int>()
        for payload in payloads {
            let text = String(decoding: payload, as: UTF8.self)
            if let mark = text.range(of: "#seq:"), let number = Int(text[mark.upperBound...]) { seen.insert(number) }
        }
        var ranges: [ClosedRange<Int>] = []
        for number in 0..<count where !seen.contains(number) {
            if let last = ranges.last, last.upperBound == number - 1 {
                ranges[ranges.count - 1] = last.lowerBound...number
            } else {
                ranges.append(number...number)
            }
        }
        return ranges
    }

    /// 1 byte, a typical MTU's worth, and the most an IPv4 UDP datagram holds (65,535 less 28 bytes of headers).
    static let sizes = [1, 1_400, 65_507]

    static let python = PythonFixture.python != nil
}

// MARK: - Echo

extension UDPEndToEndTests {
    /// Datagrams of 1, 1,400 and 65,507 bytes come back whole through a recording, one flow with one event per
    /// datagram, and whole again from the tape with the echo server stopped; the pcapng export holds each as one
    /// UDP packet.
    @Test(.enabled(if: UDPEndToEndTests.python, "needs python3"))
    func datagramsUpToTheLargestEchoThroughRecordAndReplay() async throws {
        let echo = try await PythonFixture.udpEchoServer()
        defer { echo.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("echo.tape")
        let expected = "sent 1 echo same\nsent 1400 echo same\nsent 65507 echo same\n"
        let (recorded, _) = try await Self.record(Self.udpRoute(to: echo.port, tape: tape)) { ports in
            try PythonFixture.udpClient(port: ports["default"]!, sizes: Self.sizes)
        }
        echo.stop()
        #expect(recorded.status == 0 && recorded.stdout == expected, "\(recorded)")

        let sessions = try await Self.sessions(tape)
        #expect(sessions.count == 1, "\(sessions)")
        #expect(sessions.first?["client_bytes"] as? Int == 66_908, "\(sessions)")
        #expect(sessions.first?["upstream_bytes"] as? Int == 66_908, "\(sessions)")
        let events = try await Self.dataEvents(tape)
        #expect(events.map(\.payload.count) == [1, 1, 1_400, 1_400, 65_507, 65_507])
        #expect(
            events.map(\.direction)
                == Array(repeating: ["client_to_upstream", "upstream_to_client"], count: 3).flatMap { $0 }
        )

        let (replayed, status, stderr) = try await Self.replay(Self.udpReplay(tape) + ["--strict", "--require-all"]) {
            ports in try PythonFixture.udpClient(port: ports["default"]!, sizes: Self.sizes)
        }
        #expect(replayed.stdout == expected, "\(replayed)")
        #expect(status == 0, "\(stderr)")

        guard let tshark = ExportTests.tshark else { return }
        let capture = directory.path("echo.pcapng")
        let export = try await TapedeckProcess.run(["export", tape, "--format", "pcapng", "--output", capture])
        #expect(export.status == 0 && export.stderr.isEmpty, "\(export.stderr)")
        let lengths = try await offThePool {
            try ChildProcess.run([tshark, "-r", capture, "-Y", "udp", "-T", "fields", "-e", "udp.length"])
        }
        // The UDP header's length counts its own 8 bytes.
        #expect(
            lengths.output.split(separator: "\n").filter { $0.allSatisfy(\.isNumber) }
                == ["9", "9", "1408", "1408", "65515", "65515"],
            "\(lengths.output)"
        )
    }

    /// A flow (one client address) ends after `--udp-idle-timeout` without traffic: the same socket heard again
    /// later is a second session. Replay with the same timeout serves both.
    @Test(.enabled(if: UDPEndToEndTests.python, "needs python3"))
    func aFlowEndsAfterTheIdleTimeoutAndTheSameClientLaterIsANewSession() async throws {
        let echo = try await PythonFixture.udpEchoServer()
        defer { echo.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("idle.tape")
        let idle = ["--udp-idle-timeout", "300ms"]
        @Sendable func client(_ ports: [String: Int]) throws -> PythonFixture.Run {
            try PythonFixture.udpClient(port: ports["default"]!, texts: ["first", "second"], gap: 1)
        }
        let (recorded, _) = try await Self.record(Self.udpRoute(to: echo.port, tape: tape) + idle, client)
        echo.stop()
        #expect(recorded.stdout == "sent 5 echo same\nsent 6 echo same\n", "\(recorded)")
        let sessions = try await Self.sessions(tape)
        #expect(sessions.count == 2, "\(sessions)")
        #expect(Set(sessions.compactMap { $0["client"] as? String }).count == 1, "one client address: \(sessions)")
        let events = try await Self.dataEvents(tape)
        #expect(
            events.map { "\($0.session) \(String(decoding: $0.payload, as: UTF8.self))" } == [
                "1 first", "1 first", "2 second", "2 second",
            ]
        )
        // `sessions` lists both flows, with the route's UDP address.
        let listing = try await TapedeckProcess.run(["sessions", tape])
        #expect(listing.stdout.split(separator: "\n").count == 3, "a header and two flows: \(listing.stdout)")
        let grep = try await TapedeckProcess.run(["grep", tape, "second"])
        #expect(grep.status == 0 && grep.stdout.contains("session 2"), "\(grep.stdout)\(grep.stderr)")

        let (replayed, status, stderr) = try await Self.replay(
            Self.udpReplay(tape) + idle + ["--strict", "--require-all"],
            client
        )
        #expect(replayed.stdout == recorded.stdout, "\(replayed)")
        #expect(status == 0, "\(stderr)")
    }

    /// In replay, a datagram no recorded one matches gets no answer; the mismatch is logged with the closest
    /// recorded datagram, counted in the report, and fails `--strict`.
    @Test(.enabled(if: UDPEndToEndTests.python, "needs python3"))
    func aReplayedFlowWhoseClientSaysSomethingNewGetsADiagnostic() async throws {
        let echo = try await PythonFixture.udpEchoServer()
        defer { echo.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("new.tape")
        let report = directory.path("report.json")
        let (recorded, _) = try await Self.record(Self.udpRoute(to: echo.port, tape: tape)) { ports in
            try PythonFixture.udpClient(
                port: ports["default"]!,
                texts: ["ping", "metrics cpu=0.52 mem=0.31 disk=0.77"]
            )
        }
        echo.stop()
        #expect(recorded.status == 0, "\(recorded)")

        let (replayed, status, stderr) = try await Self.replay(
            Self.udpReplay(tape) + ["--strict", "--report", report]
        ) { ports in
            try PythonFixture.udpClient(
                port: ports["default"]!,
                texts: ["ping", "metrics cpu=0.97 mem=0.31 disk=0.77"],
                wait: 1
            )
        }
        #expect(replayed.stdout == "sent 4 echo same\nsent 35 no answer\n", "\(replayed)")
        #expect(status == 3, "\(stderr)")
        let lines = stderr.split(separator: "\n").filter { $0.contains("mismatch") && $0.contains("cpu=0.97") }
        #expect(lines.count == 1, "\(stderr)")
        #expect(lines.first?.contains("cpu=0.52") == true, "the closest recorded datagram: \(stderr)")
        let parsed = try JSONDecoder().decode(ReplayReport.self, from: Data(contentsOf: URL(fileURLWithPath: report)))
        #expect(parsed.mismatches.count == 1, "\(parsed)")
        #expect(parsed.mismatches.first?.actual.contains("cpu=0.97") == true, "\(parsed)")
        #expect(parsed.mismatches.first?.expected.contains("cpu=0.52") == true, "\(parsed)")
    }
}

// MARK: - One-way

extension UDPEndToEndTests {
    /// A client sending 10,000 statsd-like datagrams, answered by nothing: the sink hears every one through the
    /// recording, the tape holds every one as an event, and replay takes every one as recorded.
    @Test(.enabled(if: UDPEndToEndTests.python, "needs python3"))
    func aOneWayStreamOfTenThousandDatagramsIsRecordedWhole() async throws {
        let count = 10_000
        let sink = try await PythonFixture.UDPSink(expected: count, idle: 3)
        defer { sink.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("statsd.tape")
        let recorder = try TapedeckProcess(["record"] + Self.udpRoute(to: sink.port, tape: tape))
        let port = try Self.port(of: try #require(try await recorder.waitForListening()["default"]))
        let sent = try await offThePool { try PythonFixture.statsdSender(port: port, count: count, rate: 5_000) }
        // Every datagram through before the recorder stops: the sink reports once it has them all (or after 3 s of
        // silence).
        let heard = try await sink.count(timeout: .seconds(15))
        let queue = Self.kernelQueue(port: port)
        recorder.signal(SIGTERM)
        #expect(try await recorder.waitForExit(timeout: .seconds(10)) == 0, "\(recorder.stderr)")
        #expect(sent.status == 0, "\(sent)")
        let bytes = try #require(
            Int(sent.stdout.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "")
        )
        #expect(
            heard == .init(datagrams: count, distinct: count, bytes: bytes),
            "at Tapedeck's listener the kernel holds \(queue.map { "\($0.unread) bytes unread and dropped \($0.drops) datagrams" } ?? "?")"
        )

        let sessions = try await Self.sessions(tape)
        #expect(sessions.count == 1, "\(sessions)")
        #expect(sessions.first?["client_bytes"] as? Int == bytes, "\(sessions)")
        #expect(sessions.first?["upstream_bytes"] as? Int == 0, "\(sessions)")
        let events = try await Self.dataEvents(tape)
        #expect(events.count == count, "missing: \(Self.missingSequenceNumbers(events.map(\.payload), count: count))")
        #expect(events.allSatisfy { $0.direction == "client_to_upstream" })
        #expect(Set(events.map(\.payload)).count == count)
        let stats = try await TapedeckProcess.run(["stats", tape])
        #expect(stats.status == 0 && stats.stdout.contains("1 sessions"), "\(stats.stdout)")

        let replayer = try TapedeckProcess(["replay", "--strict", "--require-all"] + Self.udpReplay(tape))
        let replayPort = try Self.port(of: try #require(try await replayer.waitForListening()["default"]))
        _ = try await offThePool { try PythonFixture.statsdSender(port: replayPort, count: count, rate: 5_000) }
        try await Self.waitUntilRead(port: replayPort)
        replayer.signal(SIGTERM)
        #expect(try await replayer.waitForExit(timeout: .seconds(10)) == 0, "\(replayer.stderr)")
    }

    /// A graceful stop (SIGTERM) relays and records the datagrams clients sent before it: those the kernel still
    /// holds for the listener are read, not thrown away with the socket. Tapedeck is held still (SIGSTOP) while a
    /// client sends, as a busy machine holds it, so that they are all still queued when the signal comes.
    @Test(.enabled(if: UDPEndToEndTests.python, "needs python3"))
    func aGracefulStopKeepsTheDatagramsAlreadySent() async throws {
        let count = 1_000
        let sink = try await PythonFixture.UDPSink(expected: count, idle: 2)
        defer { sink.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("stop.tape")
        let recorder = try TapedeckProcess(["record"] + Self.udpRoute(to: sink.port, tape: tape))
        let port = try Self.port(of: try #require(try await recorder.waitForListening()["default"]))
        recorder.signal(SIGSTOP)
        let sent = try await offThePool { try PythonFixture.statsdSender(port: port, count: count, rate: 20_000) }
        let queued = Self.kernelQueue(port: port)
        recorder.signal(SIGTERM)
        recorder.signal(SIGCONT)
        #expect(try await recorder.waitForExit(timeout: .seconds(10)) == 0, "\(recorder.stderr)")
        #expect(sent.status == 0, "\(sent)")
        let heard = try await sink.count(timeout: .seconds(5))
        #expect(heard.datagrams == count, "queued at the signal: \(queued.map { "\($0.unread) bytes" } ?? "?")")
        let events = try await Self.dataEvents(tape)
        #expect(events.count == count, "missing: \(Self.missingSequenceNumbers(events.map(\.payload), count: count))")
    }
}

// MARK: - tapedeck run, bad input, the Swift API

extension UDPEndToEndTests {
    /// `tapedeck run` with a UDP route gives the command its address (`TAPEDECK_ADDR` as `HOST:PORT`, what a UDP
    /// client takes, and `_HOST`, `_PORT`); the command's datagrams are recorded, and replayed with the echo server
    /// stopped.
    @Test(.enabled(if: UDPEndToEndTests.python, "needs python3"))
    func runGivesTheCommandAUDPRouteAndReplaysIt() async throws {
        let echo = try await PythonFixture.udpEchoServer()
        defer { echo.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("run.tape")
        let python = try #require(PythonFixture.python)
        let client = PythonFixture.directory.appendingPathComponent("clients/udp_client.py").path
        let script =
            "echo \"$TAPEDECK_ADDR $TAPEDECK_HOST $TAPEDECK_PORT\" && exec \(python) \(client) \"$TAPEDECK_PORT\" "
            + "--size 1400 --text ping"
        let environment: [String: String?] = ["TAPEDECK_MODE": nil]
        let recorded = try await TapedeckProcess.run(
            [
                "run", "--mode", "record", "--tape", tape, "--listen", "udp:127.0.0.1:0", "--upstream",
                "udp:127.0.0.1:\(echo.port)", "--", "/bin/sh", "-c", script,
            ],
            environment: environment,
            timeout: .seconds(60)
        )
        echo.stop()
        #expect(recorded.status == 0, "\(recorded.stderr)")
        let lines = recorded.stdout.split(separator: "\n")
        let variables = lines.first?.split(separator: " ").map(String.init) ?? []
        #expect(variables.count == 3 && variables[0] == "127.0.0.1:\(variables[2])", "\(recorded.stdout)")
        #expect(variables.count == 3 && variables[1] == "127.0.0.1", "\(recorded.stdout)")
        #expect(lines.dropFirst() == ["sent 1400 echo same", "sent 4 echo same"], "\(recorded.stdout)")
        #expect(try await Self.sessions(tape).count == 1)

        let replayed = try await TapedeckProcess.run(
            [
                "run", "--mode", "replay", "--require-all", "--tape", tape, "--listen", "udp:127.0.0.1:0", "--",
                "/bin/sh", "-c", script,
            ],
            environment: environment,
            timeout: .seconds(60)
        )
        #expect(replayed.status == 0, "\(replayed.stderr)")
        #expect(
            replayed.stdout.split(separator: "\n").dropFirst() == recorded.stdout.split(separator: "\n").dropFirst()
        )
    }

    /// A UDP listener with a TCP upstream (or the other way round) is refused before anything starts: one line on
    /// stderr, a non-zero status.
    @Test(arguments: [
        ["proxy", "--listen", "udp:127.0.0.1:0", "--upstream", "127.0.0.1:9"],
        ["proxy", "--listen", "localhost:0", "--upstream", "udp:127.0.0.1:9"],
        ["record", "--tape", "$TAPE", "--listen", "udp:127.0.0.1:0", "--upstream", "127.0.0.1:9"],
    ])
    func aTransportMismatchBetweenListenerAndUpstreamIsOneErrorLine(arguments: [String]) async throws {
        let directory = try TemporaryDirectory()
        let result = try await TapedeckProcess.run(
            arguments.map { $0 == "$TAPE" ? directory.path("x.tape") : $0 },
            timeout: .seconds(20)
        )
        #expect(result.status == 1 || result.status == 2, "\(result.status): \(result.stderr)")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(lines.first?.lowercased().contains("udp") == true, "\(result.stderr)")
        #expect(!result.stdout.contains("listening"), "\(result.stdout)")
        #expect(!FileManager.default.fileExists(atPath: directory.path("x.tape")))
    }

    /// `Deck.start` with a UDP route records the echo of a datagram, and a replaying deck serves it back with the
    /// echo server stopped; the report says one flow replayed and nothing mismatched.
    @Test(.enabled(if: UDPEndToEndTests.python, "needs python3"))
    func theSwiftAPIRecordsAndReplaysAUDPRoute() async throws {
        let echo = try await PythonFixture.udpEchoServer()
        defer { echo.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("api.tape")
        let recorder = try await Deck.start(
            .record,
            tape: tape,
            routes: [
                Route(
                    listen: try Endpoint(parsing: "udp:127.0.0.1:0"),
                    upstream: .udp(host: "127.0.0.1", port: echo.port),
                    udpIdleTimeout: .seconds(5)
                )
            ]
        )
        guard case .udp(let host, let recordPort) = recorder.address else {
            Issue.record("a UDP route is bound to \(recorder.address)")
            try await recorder.stop()
            return
        }
        #expect(host == "127.0.0.1")
        // A generous wait: the in-process deck shares its event loops with every other in-process suite.
        let recorded = try await offThePool {
            try PythonFixture.udpClient(port: recordPort, texts: ["api"], wait: 15)
        }
        let recording = try await recorder.stop()
        echo.stop()
        #expect(recorded.stdout == "sent 3 echo same\n", "\(recorded)")
        #expect(recording.recordedSessions == 1)

        let replayer = try await Deck.start(
            .replay,
            tape: tape,
            routes: [Route(listen: try Endpoint(parsing: "udp:127.0.0.1:0"))]
        )
        let replayPort = try Self.port(of: replayer.address)
        let replayed = try await offThePool {
            try PythonFixture.udpClient(port: replayPort, texts: ["api"], wait: 15)
        }
        let outcome = try await replayer.stop()
        #expect(replayed.stdout == recorded.stdout, "\(replayed)")
        let report = try #require(outcome.replay)
        #expect(report.mismatches.isEmpty, "\(report.mismatches)")
        #expect(report.replayed.count == 1, "\(report)")
    }
}
