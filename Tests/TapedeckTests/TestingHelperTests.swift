import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing

@testable import Tapedeck
@testable import TapedeckTesting

/// `withTapedeck`: the closure-scoped helper every framework builds on.
@Suite(.timeLimit(.minutes(3)))
struct WithTapedeckTests {
    @Test func recordsAndReplaysAndAlwaysStops() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("fixtures/echo.tape")
        let upstream = try await TestServer.start(.echo)
        let upstreamAddress = "\(upstream.endpoint)"

        let (recorded, recordedAt) = try await withTapedeck(.record, tape: tape, upstream: upstreamAddress) {
            address throws in
            #expect(Deck.current?.address == address)
            return (try await TestClient.exchange(address, "hello helper").reply, address)
        }
        #expect(recorded == "hello helper")
        #expect(await TestClient.isRefused(recordedAt))
        await upstream.stop()

        let replayed = try await withTapedeck(.replay, tape: tape, upstream: upstreamAddress, requireAll: true) {
            address in
            try await TestClient.exchange(address, "hello helper").reply
        }
        #expect(replayed == "hello helper")
        #expect(Deck.current == nil)
    }

    @Test func aReplayMismatchFailsWithItsDiagnostics() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("echo.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await withTapedeck(.record, tape: tape, upstream: "\(upstream.endpoint)") { address in
            _ = try await TestClient.exchange(address, "SELECT 1")
        }
        let error = await #expect(throws: TapedeckError.self) {
            try await withTapedeck(.replay, tape: tape) { address in
                _ = try await TestClient.exchange(address, "SELECT 2")
            }
        }
        #expect(error?.code == .replayMismatch)
        #expect(error?.message.contains("expected \"SELECT 1\", got \"SELECT 2\"") == true)
    }

    @Test func theBodysErrorComesFirstAndTheDeckStillStops() async throws {
        struct Expected: Error {}
        let directory = try TemporaryDirectory()
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let address = NIOLockedValueBox<Endpoint?>(nil)
        await #expect(throws: Expected.self) {
            try await withTapedeck(.record, tape: directory.path("e.tape"), upstream: "\(upstream.endpoint)") { bound in
                address.withLockedValue { $0 = bound }
                throw Expected()
            }
        }
        let bound = try #require(address.withLockedValue { $0 })
        #expect(await TestClient.isRefused(bound))
        // The recording was still flushed and closed: the run has an end.
        let tape = try Tape(readingAt: directory.path("e.tape"))
        #expect(try tape.runs().map { $0.endedAt != nil } == [true])
    }

    @Test func theFirstRecordingInAProcessReplacesTheTapeAndLaterOnesAddRuns() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("phases.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        // A stale tape from an earlier recording, written without the helpers.
        try await recordExchange("stale", into: tape, upstream: upstream.endpoint)

        for phase in ["one", "two"] {
            try await withTapedeck(.record, tape: tape, upstream: "\(upstream.endpoint)") { address in
                _ = try await TestClient.exchange(address, phase)
            }
        }
        let sessions = try Tape(readingAt: tape).sessions()
        #expect(sessions.count == 2)
        #expect(Set(sessions.map(\.runID)).count == 2)
    }

    @Test func concurrentRecordingsOfOneTapeTakeTurns() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("fixtures/shared.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let upstreamAddress = "\(upstream.endpoint)"
        try await withThrowingTaskGroup(of: Void.self) { group in
            for word in ["alpha", "beta", "gamma"] {
                group.addTask {
                    try await withTapedeck(.record, tape: tape, upstream: upstreamAddress) { address throws in
                        #expect(try await TestClient.exchange(address, word).reply == word)
                    }
                }
            }
            try await group.waitForAll()
        }
        let sessions = try Tape(readingAt: tape).sessions()
        #expect(sessions.count == 3)
        #expect(Set(sessions.map(\.runID)).count == 3)
    }

    @Test func aMissingTapeSaysHowToRecordIt() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("fixtures/none.tape")
        let error = await #expect(throws: TapedeckError.self) {
            try await withTapedeck(.replay, tape: tape) { _ in }
        }
        #expect(error?.message == "cannot open tape '\(tape)': no such file; record it with TAPEDECK_MODE=record")
    }

    @Test func severalRoutesAreFoundByName() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("two.tape")
        let first = try await TestServer.start(.echo)
        let second = try await TestServer.start(.greetThenEcho(ByteBuffer(string: "hi:")))
        let routes = [Route(name: "db", upstream: first.endpoint), Route(name: "cache", upstream: second.endpoint)]
        try await withTapedeck(.record, tape: tape, routes: routes) { deck throws in
            #expect(try await TestClient.exchange(try deck.address(of: "db"), "q").reply == "q")
            #expect(try await TestClient.exchange(try deck.address(of: "cache"), "k").reply == "hi:k")
        }
        await first.stop()
        await second.stop()
        try await withTapedeck(.replay, tape: tape, routes: routes.map { Route(name: $0.name) }, requireAll: true) {
            deck throws in
            #expect(try await TestClient.exchange(try deck.address(of: "cache"), "k").reply == "hi:k")
            #expect(try await TestClient.exchange(try deck.address(of: "db"), "q").reply == "q")
        }
    }
}

/// The Swift Testing trait, used as users use it and driven by hand for the cases that must fail.
@Suite(.timeLimit(.minutes(3)))
struct TapedeckTraitTests {
    /// Replays `fixtures/TapedeckTraitTests/talksToRedis.tape`, recorded from a real redis-server on port 6379
    /// with `TAPEDECK_MODE=record swift test --filter talksToRedis`.
    @Test(.tapedeck(upstream: "127.0.0.1:6379", requireAll: true))
    func talksToRedis() async throws {
        let address = try #require(Deck.current).address
        let ping = try await TestClient.exchange(address, "*1\r\n$4\r\nPING\r\n")
        #expect(ping.reply == "+PONG\r\n")
        let setThenGet = try await TestClient.exchange(
            address,
            "*3\r\n$3\r\nSET\r\n$8\r\ngreeting\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$8\r\ngreeting\r\n"
        )
        #expect(setThenGet.reply == "+OK\r\n$5\r\nhello\r\n")
    }

    @Test func tapesAreNamedAfterTheSuiteAndTheTest() throws {
        let test = try #require(Test.current)
        let root = FixtureTapes.packageRoot(containing: #filePath)
        #expect(FileManager.default.fileExists(atPath: root + "/Package.swift"))
        let path = FixtureTapes.path(
            sourceFile: #filePath,
            components: Array(test.id.nameComponents.dropLast()),
            name: test.name
        )
        #expect(path == root + "/fixtures/TapedeckTraitTests/tapesAreNamedAfterTheSuiteAndTheTest.tape")
        #expect(FixtureTapes.fileName("load(id:)") == "load_id")
        #expect(
            FixtureTapes.path(
                sourceFile: #filePath,
                components: ["Suite"],
                name: "test()",
                environment: ["TAPEDECK_FIXTURES": "/elsewhere"]
            ) == "/elsewhere/Suite/test.tape"
        )
        #expect(
            FixtureTapes.path(explicit: "/abs/x.tape", sourceFile: #filePath, components: [], name: "n")
                == "/abs/x.tape"
        )
        #expect(
            FixtureTapes.path(explicit: "fixtures/x.tape", sourceFile: #filePath, components: [], name: "n") == root
                + "/fixtures/x.tape"
        )
    }

    @Test func recordsThroughTheTraitAndFailsTheTestOnAMismatch() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("trait.tape")
        let upstream = try await TestServer.start(.echo)
        let test = try #require(Test.current)

        try await TapedeckTrait.tapedeck(.record, upstream: "\(upstream.endpoint)", tape: tape)
            .provideScope(for: test, testCase: Test.Case.current) {
                let address = try #require(Deck.current).address
                #expect(try await TestClient.exchange(address, "AUTH secret").reply == "AUTH secret")
            }
        await upstream.stop()
        #expect(try Tape(readingAt: tape).sessions().count == 1)

        try await withKnownIssue {
            try await TapedeckTrait.tapedeck(.replay, tape: tape)
                .provideScope(for: test, testCase: Test.Case.current) {
                    let address = try #require(Deck.current).address
                    _ = try await TestClient.exchange(address, "AUTH wrong")
                }
        } matching: { issue in
            "\(issue)".contains("expected \"AUTH secret\", got \"AUTH wrong\"")
        }
    }
}

/// The trait on a suite: each test, and each case of a parameterized test, runs in its own deck. The tapes,
/// `fixtures/TapedeckSuiteTraitTests/pings.tape` and `…/echoes_word.tape`, were recorded from a real
/// redis-server on port 6379 with `TAPEDECK_MODE=record swift test --filter TapedeckSuiteTraitTests`; the
/// two cases of `echoes` share their tape, the first recording replacing it and the second adding a run.
@Suite(.tapedeck(upstream: "127.0.0.1:6379"), .timeLimit(.minutes(3)))
struct TapedeckSuiteTraitTests {
    @Test func pings() async throws {
        let deck = try #require(Deck.current)
        #expect(try await TestClient.exchange(deck.address, "*1\r\n$4\r\nPING\r\n").reply == "+PONG\r\n")
    }

    @Test(arguments: ["tape", "deck"])
    func echoes(word: String) async throws {
        let deck = try #require(Deck.current)
        let reply = try await TestClient.exchange(deck.address, "*2\r\n$4\r\nECHO\r\n$4\r\n\(word)\r\n")
        #expect(reply.reply == "$4\r\n\(word)\r\n")
    }
}
