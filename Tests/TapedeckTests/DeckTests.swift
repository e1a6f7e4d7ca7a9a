import Foundation
import NIOCore
import Testing

@testable import Tapedeck

/// The library's entry point, in process: every mode on one upstream, and what stopping returns.
@Suite(.timeLimit(.minutes(3)))
struct DeckTests {
    @Test func recordsThenReplaysWithTheUpstreamGone() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("nested/dir/echo.tape")
        let upstream = try await TestServer.start(.echo)
        let route = Route(upstream: upstream.endpoint)

        let recording = try await Deck.start(.record, tape: tape, routes: [route])
        #expect(recording.mode == .record)
        let recorded = try await TestClient.exchange(recording.address, "hello deck")
        let recordedOutcome = try await recording.stop()
        #expect(recorded.reply == "hello deck")
        #expect(recordedOutcome.recordedSessions == 1)
        #expect(recordedOutcome.replay == nil)
        // Recording created the tape's directory, and the tape is owner-only.
        let attributes = try FileManager.default.attributesOfItem(atPath: tape)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        // A small tape is compacted and closed: one file of tens of kilobytes, no -wal or -shm beside it.
        #expect((attributes[.size] as? Int).map { $0 < 100_000 } == true)
        #expect(
            !FileManager.default.fileExists(atPath: tape + "-wal")
                && !FileManager.default.fileExists(atPath: tape + "-shm")
        )

        await upstream.stop()
        let replaying = try await Deck.start(.replay, tape: tape, routes: [route])
        let replayed = try await TestClient.exchange(replaying.address, "hello deck")
        #expect(replaying.replayReport?.replayed.count == 1)
        let outcome = try await replaying.stop()
        #expect(replayed.reply == "hello deck")
        // Replaying left nothing beside the tape: a committed fixture stays one clean file.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("nested/dir")) == ["echo.tape"])
        let report = try #require(outcome.replay)
        #expect(report.replayed.count == 1 && report.mismatches.isEmpty && report.unused.isEmpty)
        try report.verify(requireAll: true)
    }

    @Test func aMismatchIsInTheOutcomeAndVerifyThrowsIt() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("echo.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await recordExchange("GET /a", into: tape, upstream: upstream.endpoint)

        let deck = try await Deck.start(.replay, tape: tape, routes: [Route()])
        let answer = try await TestClient.exchange(deck.address, "GET /b")
        let report = try #require(try await deck.stop().replay)
        #expect(answer.ending == .reset)
        #expect(report.mismatches.count == 1)
        #expect(report.mismatches.first?.offset == 5)
        #expect(report.unused.count == 1)
        let error = try #require(throws: TapedeckError.self) { try report.verify() }
        #expect(error.code == .replayMismatch)
        #expect(error.message.hasPrefix("replay found 1 mismatched connection: "))
        #expect(error.message.contains("GET /a") && error.message.contains("GET /b"))
        #expect(!error.message.contains("\n"))
        #expect(report.failures(requireAll: true).count == 2)
    }

    @Test func autoRecordsAMissingTapeAndReplaysAnExistingOne() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("auto.tape")
        let upstream = try await TestServer.start(.echo)
        let route = Route(upstream: upstream.endpoint)

        let first = try await Deck.start(.auto, tape: tape, routes: [route])
        #expect(first.mode == .record)
        _ = try await TestClient.exchange(first.address, "ping")
        try await first.stop()
        await upstream.stop()

        let second = try await Deck.start(.auto, tape: tape, routes: [route])
        #expect(second.mode == .replay)
        #expect(try await TestClient.exchange(second.address, "ping").reply == "ping")
        try await second.stop()
    }

    @Test func recordMissingRelaysWhatTheTapeLacksAndKeepsIt() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("missing.tape")
        let upstream = try await TestServer.start(.echo)
        let route = Route(upstream: upstream.endpoint)

        let deck = try await Deck.start(.recordMissing, tape: tape, routes: [route])
        #expect(try await TestClient.exchange(deck.address, "new request").reply == "new request")
        let outcome = try await deck.stop()
        #expect(outcome.recordedSessions == 1)
        #expect(outcome.replay?.recorded.count == 1)
        await upstream.stop()

        let replay = try await Deck.start(.replay, tape: tape, routes: [route])
        #expect(try await TestClient.exchange(replay.address, "new request").reply == "new request")
        try await replay.stop().replay?.verify(requireAll: true)
    }

    @Test func aSingleDefaultRouteServesATapeRecordedUnderAnotherName() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("named.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await recordExchange("named", into: tape, upstream: upstream.endpoint, route: "cache")

        let deck = try await Deck.start(.replay, tape: tape, routes: [Route()])
        #expect(deck.routes.map(\.name) == ["cache"])
        #expect(try deck.address(of: "cache") == deck.address)
        #expect(throws: TapedeckError.self) { try deck.address(of: "db") }
        #expect(try await TestClient.exchange(deck.address, "named").reply == "named")
        try await deck.stop()
    }

    @Test func proxyModeRelaysAndRecordsNothing() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let deck = try await Deck.start(.proxy, tape: nil, routes: [Route(upstream: upstream.endpoint)])
        #expect(try await TestClient.exchange(deck.address, "through").reply == "through")
        let outcome = try await deck.stop()
        #expect(outcome.mode == .proxy && outcome.recordedSessions == 0 && outcome.replay == nil)
        #expect(await TestClient.isRefused(deck.address))
        // A second stop does nothing and returns the first one's outcome.
        #expect(try await deck.stop() == outcome)
    }

    @Test func badStartsAreOneLineErrors() async throws {
        let directory = try TemporaryDirectory()
        let missing = directory.path("missing.tape")
        let noTape = await #expect(throws: TapedeckError.self) {
            try await Deck.start(.replay, tape: missing, routes: [Route()])
        }
        #expect(noTape?.message == "cannot open tape '\(missing)': no such file")
        let noUpstream = await #expect(throws: TapedeckError.self) {
            try await Deck.start(.record, tape: directory.path("x.tape"), routes: [Route(name: "db")])
        }
        #expect(noUpstream?.message == "route 'db' has no upstream, which recording needs")
        #expect(!FileManager.default.fileExists(atPath: directory.path("x.tape")))
        let noTapeGiven = await #expect(throws: TapedeckError.self) {
            try await Deck.start(.replay, tape: nil, routes: [Route()])
        }
        #expect(noTapeGiven?.message == "replay mode needs a tape")
    }
}

/// Choosing the mode by name and by environment.
struct TapedeckModeTests {
    @Test func parsesNamesAndTheEnvironment() throws {
        #expect(try TapedeckMode(parsing: " Record ") == .record)
        #expect(try TapedeckMode(parsing: "record-missing") == .recordMissing)
        #expect(throws: TapedeckError.self) { try TapedeckMode(parsing: "rec") }
        #expect(try TapedeckMode.fromEnvironment([:]) == .replay)
        #expect(try TapedeckMode.fromEnvironment(["TAPEDECK_MODE": ""]) == .replay)
        #expect(try TapedeckMode.fromEnvironment(["TAPEDECK_MODE": "auto"]) == .auto)
        #expect(try TapedeckMode.fromEnvironment(["TAPEDECK_MODE": "record"], default: .proxy) == .record)
        let error = #expect(throws: TapedeckError.self) { try TapedeckMode.fromEnvironment(["TAPEDECK_MODE": "bogus"]) }
        #expect(error?.message == "invalid TAPEDECK_MODE 'bogus': use proxy, record, replay, record-missing, auto")
    }

    @Test func autoDependsOnWhetherTheTapeExists() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("t.tape")
        #expect(TapedeckMode.auto.resolved(forTape: path) == .record)
        // An empty file (a tape whose creation failed) is no fixture: auto records it.
        #expect(FileManager.default.createFile(atPath: path, contents: Data()))
        #expect(TapedeckMode.auto.resolved(forTape: path) == .record)
        #expect(FileManager.default.createFile(atPath: path, contents: Data("SQLite format 3".utf8)))
        #expect(TapedeckMode.auto.resolved(forTape: path) == .replay)
        #expect(TapedeckMode.record.resolved(forTape: path) == .record)
    }
}

/// The variables `tapedeck run` hands its command.
struct RouteEnvironmentTests {
    @Test func oneRouteGetsShortAndNamedVariables() {
        let variables = RouteEnvironment.variables(for: [
            BoundRoute(name: "default", address: .tcp(host: "127.0.0.1", port: 4000))
        ])
        #expect(
            variables == [
                "TAPEDECK_ADDR": "127.0.0.1:4000", "TAPEDECK_HOST": "127.0.0.1", "TAPEDECK_PORT": "4000",
                "TAPEDECK_DEFAULT_ADDR": "127.0.0.1:4000", "TAPEDECK_DEFAULT_HOST": "127.0.0.1",
                "TAPEDECK_DEFAULT_PORT": "4000",
            ]
        )
    }

    @Test func severalRoutesGetNamedVariablesOnly() {
        let variables = RouteEnvironment.variables(for: [
            BoundRoute(name: "pg-main", address: .tcp(host: "::1", port: 5000)),
            BoundRoute(name: "cache.v2", address: .unix(path: "/tmp/c.sock")),
        ])
        #expect(
            variables == [
                "TAPEDECK_PG_MAIN_ADDR": "[::1]:5000", "TAPEDECK_PG_MAIN_HOST": "::1", "TAPEDECK_PG_MAIN_PORT": "5000",
                "TAPEDECK_CACHE_V2_ADDR": "unix:/tmp/c.sock", "TAPEDECK_CACHE_V2_SOCKET": "/tmp/c.sock",
            ]
        )
    }
}

/// Re-recording over an existing tape keeps the old one until the new recording is complete.
@Suite(.timeLimit(.minutes(3)))
struct TapeReplacementTests {
    @Test func overwritingReplacesTheTapeOnlyWhenTheRecordingIsDone() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("replace.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let route = Route(upstream: upstream.endpoint)
        try await recordExchange("old", into: tape, upstream: upstream.endpoint)

        let second = try await Deck.start(.record, tape: tape, routes: [route], options: .init(overwrite: true))
        _ = try await TestClient.exchange(second.address, "new one")
        // While recording, the old tape is still the tape.
        #expect(try Tape(readingAt: tape).sessions().map(\.clientBytes) == [3])
        #expect(FileManager.default.fileExists(atPath: tape + ".recording"))
        try await second.stop()
        // Probes aside: another test's check that its own freed port refuses may reach this deck, given that port.
        let sessions = try Tape(readingAt: tape).sessions().filter { $0.outcome != .probe }
        #expect(sessions.map(\.clientBytes) == [7], "\(sessions)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("")) == ["replace.tape"])
    }

    @Test func aRecordingThatCannotStartLeavesTheOldTapeAlone() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("keep.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await recordExchange("kept", into: tape, upstream: upstream.endpoint)
        // Its listener holds the port the next recording asks for.
        let busy = try await Deck.start(.proxy, tape: nil, routes: [Route(upstream: upstream.endpoint)])

        await #expect(throws: TapedeckError.self) {
            try await Deck.start(
                .record,
                tape: tape,
                routes: [Route(listen: busy.address, upstream: upstream.endpoint)],
                options: .init(overwrite: true)
            )
        }
        try await busy.stop()
        #expect(try Tape(readingAt: tape).sessions().count == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("")) == ["keep.tape"])
    }
}
