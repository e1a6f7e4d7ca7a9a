import Foundation
import NIOCore
import Testing

@testable import Tapedeck

/// `tapedeck replay` as a process: the summary, the JSON report, strictness, routes, errors.
@Suite(.timeLimit(.minutes(3)))
struct ReplayCommandTests {
    /// A tape with one session per message, recorded against an echo server.
    static func recordEchoTape(at path: String, messages: [String]) async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: path) { address throws in
            for message in messages { _ = try await TestClient.exchange(ByteBuffer(string: message), at: address) }
        }
    }

    @Test func strictModeFailsOnAMismatchAndTheReportSaysWhy() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("echo.tape")
        let reportPath = directory.path("report.json")
        try await Self.recordEchoTape(at: tapePath, messages: ["one", "two"])

        let child = try TapedeckProcess(["replay", "--tape", tapePath, "--strict", "--report", reportPath])
        let address = try #require(try await child.waitForListening()["default"])
        #expect(String(buffer: try await TestClient.exchange(ByteBuffer(string: "one"), at: address).0) == "one")
        #expect(try await TestClient.exchange(ByteBuffer(string: "three"), at: address).1 == .reset)
        child.signal(SIGTERM)
        #expect(try await child.waitForExit(timeout: .seconds(10)) == 3)
        #expect(child.stderr.contains("replay: 2 connections, 1 session replayed, 1 mismatched, 1 unused"))
        #expect(child.stderr.contains("replay mismatch: the client's bytes differ from every recorded session"))

        let report = try JSONDecoder().decode(
            ReplayReport.self,
            from: Data(contentsOf: URL(fileURLWithPath: reportPath))
        )
        #expect(report.connections == 2)
        #expect(report.replayed.map(\.session) == [1])
        #expect(report.mismatches.first?.closestSession != nil)
        #expect(report.mismatches.first?.actual == "three")
        #expect(report.unused.map(\.session) == [2])
        // Field names are part of the interface.
        let json = try String(contentsOfFile: reportPath, encoding: .utf8)
        for key in [
            "\"connections\"", "\"replayed\"", "\"mismatches\"", "\"unused\"", "\"closest_session\"", "\"offset\"",
        ] {
            #expect(json.contains(key))
        }
    }

    /// Sends each message on one connection, waiting for its echo before the next; returns the echoes.
    static func conversation(_ messages: [String], at address: Endpoint) async throws -> [String] {
        let connection = try await TestClient.connect(to: address)
        return try await connection.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            var echoes: [String] = []
            for message in messages {
                try await outbound.write(ByteBuffer(string: message))
                guard let reply = try await iterator.next() else { break }
                echoes.append(String(buffer: reply))
            }
            return echoes
        }
    }

    @Test func theSummaryNamesEachSessionReplayedInPart() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("pool.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address throws in
            #expect(try await Self.conversation(["a", "b"], at: address) == ["a", "b"])
            #expect(try await Self.conversation(["c"], at: address) == ["c"])
        }
        let child = try TapedeckProcess(["replay", "--tape", tapePath])
        let address = try #require(try await child.waitForListening()["default"])
        // Session 1's first exchange, then session 2's: session 1's second exchange is never played.
        #expect(try await Self.conversation(["a", "c"], at: address) == ["a", "c"])
        child.signal(SIGTERM)
        #expect(try await child.waitForExit(timeout: .seconds(10)) == 0)
        #expect(child.stderr.contains("1 replayed in part"), "\(child.stderr)")
        #expect(
            child.stderr.contains(
                "  session 1 of route 'default' was replayed in part: its exchange at byte 1 never was"
            ),
            "\(child.stderr)"
        )
    }

    @Test func aSignalRightAfterTheListeningLineShutsDownGracefully() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("echo.tape")
        try await Self.recordEchoTape(at: tapePath, messages: ["one"])
        // A harness that stops replay as soon as it listens must get the summary and status 0, never a process
        // killed by the signal: the signal can come before the deck's service group listens for it.
        for round in 0..<8 {
            let child = try TapedeckProcess(["replay", "--tape", tapePath])
            _ = try await child.waitForListening()
            child.signal(round.isMultiple(of: 2) ? SIGTERM : SIGINT)
            #expect(try await child.waitForExit(timeout: .seconds(10)) == 0, "round \(round): \(child.stderr)")
            #expect(child.stderr.contains("replay: 0 connections"), "round \(round)")
        }
    }

    @Test func requireAllFailsWhenASessionWasNeverReplayed() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("echo.tape")
        try await Self.recordEchoTape(at: tapePath, messages: ["one", "two"])
        for (flags, status) in [([String](), Int32(0)), (["--strict"], 0), (["--require-all"], 3)] {
            let child = try TapedeckProcess(["replay", "--tape", tapePath] + flags)
            let address = try #require(try await child.waitForListening()["default"])
            _ = try await TestClient.exchange(ByteBuffer(string: "two"), at: address)
            child.signal(SIGTERM)
            #expect(try await child.waitForExit(timeout: .seconds(10)) == status, "\(flags)")
            #expect(child.stderr.contains("replay: 1 connection, 1 session replayed, 0 mismatched, 1 unused"))
        }
    }

    @Test func aTapeWithSeveralRoutesNeedsARouteOrAConfig() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("routes.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let config = try directory.twoRouteConfig(upstream: upstream.endpoint)
        let recorder = try TapedeckProcess(["record", "--config", config, "--tape", tapePath])
        let recording = try await recorder.waitForListening(count: 2)
        _ = try await TestClient.exchange(ByteBuffer(string: "to alpha"), at: try #require(recording["alpha"]))
        _ = try await TestClient.exchange(ByteBuffer(string: "to beta"), at: try #require(recording["beta"]))
        recorder.signal(SIGTERM)
        #expect(try await recorder.waitForExit(timeout: .seconds(10)) == 0)

        let ambiguous = try await TapedeckProcess.run(["replay", "--tape", tapePath])
        #expect(ambiguous.status == 1)
        #expect(
            ambiguous.stderr
                == "tapedeck: error: tape '\(tapePath)' has routes 'alpha', 'beta': choose one with --route or serve all with --config\n"
        )

        let unknown = try await TapedeckProcess.run(["replay", "--tape", tapePath, "--route", "gamma"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr == "tapedeck: error: tape '\(tapePath)' has no route 'gamma' (it has 'alpha', 'beta')\n")

        let beta = try TapedeckProcess(["replay", "--tape", tapePath, "--route", "beta", "--strict"])
        let betaAddress = try #require(try await beta.waitForListening()["beta"])
        #expect(
            String(buffer: try await TestClient.exchange(ByteBuffer(string: "to beta"), at: betaAddress).0)
                == "to beta"
        )
        beta.signal(SIGTERM)
        #expect(try await beta.waitForExit(timeout: .seconds(10)) == 0)

        // The recording's config serves every route; its upstreams are not contacted.
        await upstream.stop()
        let all = try TapedeckProcess(["replay", "--tape", tapePath, "--config", config, "--require-all"])
        let routes = try await all.waitForListening(count: 2)
        #expect(
            String(
                buffer: try await TestClient.exchange(
                    ByteBuffer(string: "to alpha"),
                    at: try #require(routes["alpha"])
                ).0
            ) == "to alpha"
        )
        #expect(
            String(
                buffer: try await TestClient.exchange(ByteBuffer(string: "to beta"), at: try #require(routes["beta"]))
                    .0
            ) == "to beta"
        )
        all.signal(SIGTERM)
        #expect(try await all.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test func recordedPaceReproducesTheRecordedDelay() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("slow.tape")
        // A session whose reply came 300 ms after the request. The tape is written directly, and only once the
        // recorder has finished: while it records, its writer owns the tape's connection.
        let tape = try Tape(recordingAt: tapePath)
        let route = Route(upstream: .tcp(host: "127.0.0.1", port: 9))
        let recorder = try Recorder(tape: tape, routes: [route])
        _ = recorder.beginSession(route: route, clientAddress: "127.0.0.1:1")
        try await recorder.finish()
        try await tape.database.write { db in
            try db.execute(sql: "UPDATE sessions SET outcome = 'closed'")
            try db.execute(
                sql: """
                    INSERT INTO events(session_id, seq, offset_ns, direction, kind, payload) VALUES
                    (1, 0, 0, 0, 0, CAST('ask' AS BLOB)), (1, 1, 300000000, 1, 0, CAST('answer' AS BLOB))
                    """
            )
        }
        var elapsed: [String: Duration] = [:]
        for pace in ["fast", "recorded"] {
            let child = try TapedeckProcess(["replay", "--tape", tapePath, "--pace", pace, "--repeat"])
            let address = try #require(try await child.waitForListening()["default"])
            let started = ContinuousClock.now
            let (reply, _) = try await TestClient.exchange(ByteBuffer(string: "ask"), at: address)
            elapsed[pace] = ContinuousClock.now - started
            #expect(String(buffer: reply) == "answer")
            child.signal(SIGTERM)
            _ = try await child.waitForExit(timeout: .seconds(10))
        }
        // The recorded pace waits at least the recorded 300 ms. (That fast mode does not wait is a matter of
        // timing on a loaded machine, so it is checked on the matcher's delays in ReplayMatcherTests instead.)
        let recorded = try #require(elapsed["recorded"])
        #expect(recorded >= .milliseconds(280))
        #expect(elapsed["fast"] != nil)
    }

    @Test func badInputExitsWithOneLine() async throws {
        let missing = try await TapedeckProcess.run(["replay", "--tape", "/nonexistent/x.tape"])
        #expect(missing.status == 1)
        #expect(missing.stderr == "tapedeck: error: cannot open tape '/nonexistent/x.tape': no such file\n")
        let pace = try await TapedeckProcess.run(["replay", "--tape", "x.tape", "--pace", "slow"])
        #expect(pace.status == 2)
        #expect(
            pace.stderr == "tapedeck: error: invalid pace 'slow': use fast, recorded, or a factor such as 2x or 0.5x\n"
        )
        let missingUpstream = try await TapedeckProcess.run(["replay", "--tape", "x.tape", "--record-missing"])
        #expect(missingUpstream.status == 2)
        #expect(
            missingUpstream.stderr
                == "tapedeck: error: --record-missing needs --upstream (or --config with upstreams)\n"
        )
    }
}
