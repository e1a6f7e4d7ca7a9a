import Foundation
import NIOCore
import Testing

@testable import Tapedeck

/// What a replay counts: probes are neither replays nor mismatches, and no session is served twice.
struct ReplayAccountingTests {
    typealias M = ReplayMatcherTests

    static let ping = [
        M.session(1, [M.client("PING\r\n"), M.server("+PONG\r\n"), M.clientHalfClose, M.serverClose])
    ]

    @Test func aConnectionThatSentNothingAndResetIsNeverAReplayedSession() {
        let catalog = SessionCatalog(scripts: Self.ping, repeatable: false)
        var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
        _ = matcher.start()
        #expect(M.replies(matcher.endOfInput(reset: true)) == "")
        #expect(matcher.connectionClosed() == nil)
        #expect(matcher.probe)
        #expect(matcher.mismatch == nil)
        // The session is still there for the real client.
        #expect(catalog.unusedSessionIDs == [1])
        var real = ReplayMatcher(catalog: catalog, pace: .fast)
        let actions = real.start() + real.receive(Data("PING\r\n".utf8)) + real.endOfInput(reset: false)
        #expect(M.replies(actions) == "+PONG\r\n<close>")
        #expect(real.connectionClosed() == 1)
    }

    @Test func aProbeThatClosesIsClosedQuietlyAndUsesNoSession() {
        let catalog = SessionCatalog(scripts: Self.ping, repeatable: false)
        for _ in 0..<3 {
            var probe = ReplayMatcher(catalog: catalog, pace: .fast)
            let actions = probe.start() + probe.endOfInput(reset: false)
            #expect(M.replies(actions) == "<close>")
            #expect(probe.probe)
            #expect(probe.connectionClosed() == nil)
        }
        #expect(catalog.unusedSessionIDs == [1])
    }

    @Test func aRecordedProbeIsNotRequiredToBeReplayed() {
        let scripts = Self.ping + [M.session(2, [M.clientHalfClose, M.serverClose])]
        let catalog = SessionCatalog(scripts: scripts, repeatable: false)
        var matcher = ReplayMatcher(catalog: catalog, pace: .fast)
        _ = matcher.start() + matcher.receive(Data("PING\r\n".utf8)) + matcher.endOfInput(reset: false)
        #expect(matcher.connectionClosed() == 1)
        #expect(catalog.unusedSessionIDs.isEmpty)
    }

    @Test func aSessionOnlyAlreadyReplayedMatchesIsNamedAsAlreadyReplayed() {
        let scripts = [
            M.session(1, [M.client("GET /a\n"), M.server("A\n"), M.clientHalfClose, M.serverClose]),
            M.session(2, [M.client("GET /b\n"), M.server("B\n"), M.clientHalfClose, M.serverClose]),
        ]
        let catalog = SessionCatalog(scripts: scripts, repeatable: false)
        var first = ReplayMatcher(catalog: catalog, pace: .fast)
        _ = first.start() + first.receive(Data("GET /a\n".utf8)) + first.endOfInput(reset: false)
        #expect(first.connectionClosed() == 1)
        for chunking in [[7], [1, 6], [4, 3]] {
            var again = ReplayMatcher(catalog: catalog, pace: .fast)
            var actions = again.start()
            var offset = 0
            for size in chunking {
                actions += again.receive(Data("GET /a\n".utf8.dropFirst(offset).prefix(size)))
                offset += size
            }
            #expect(M.replies(actions).hasSuffix("<mismatch>"), "chunks \(chunking)")
            #expect(again.mismatch?.closestSessionID == 1)
            #expect(again.mismatch?.reason == "session 1 was already replayed; --repeat allows it again")
            #expect(again.connectionClosed() == nil)
        }
    }

    @Test func aSessionIsNeverServedTwiceToConnectionsThatSayTheSameAtOnce() {
        let catalog = SessionCatalog(scripts: Self.ping, repeatable: false)
        var first = ReplayMatcher(catalog: catalog, pace: .fast)
        var second = ReplayMatcher(catalog: catalog, pace: .fast)
        // Both connect before either finishes: the second follows the one session, claimed or not.
        _ = first.start()
        _ = second.start()
        _ = first.receive(Data("PING\r\n".utf8)) + first.endOfInput(reset: false)
        _ = second.receive(Data("PING\r\n".utf8)) + second.endOfInput(reset: false)
        let served = [first.connectionClosed(), second.connectionClosed()]
        #expect(served.compactMap { $0 } == [1])
        #expect(second.replayedTwice?.reason == "session 1 was already replayed; --repeat allows it again")

        // With --repeat both count.
        let repeating = SessionCatalog(scripts: Self.ping, repeatable: true)
        var one = ReplayMatcher(catalog: repeating, pace: .fast)
        var two = ReplayMatcher(catalog: repeating, pace: .fast)
        _ = one.start() + two.start()
        _ = one.receive(Data("PING\r\n".utf8)) + one.endOfInput(reset: false)
        _ = two.receive(Data("PING\r\n".utf8)) + two.endOfInput(reset: false)
        #expect([one.connectionClosed(), two.connectionClosed()] == [1, 1])
    }

    @Test func concurrentConnectionsThroughARealReplayServeEachSessionOnce() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("pings.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        for index in 0..<3 { try await recordExchange("same \(index % 1)", into: tape, upstream: upstream.endpoint) }

        let deck = try await Deck.start(.replay, tape: tape, routes: [Route()])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<12 {
                group.addTask { _ = try? await TestClient.exchange(deck.address, "same 0") }
            }
            try await group.waitForAll()
        }
        let report = try #require(try await deck.stop().replay)
        #expect(report.connections == 12)
        #expect(report.replayed.count == 3)
        #expect(Set(report.replayed.map(\.session)).count == 3, "no session twice: \(report.replayed)")
        #expect(report.mismatches.count == 9)
        #expect(
            report.mismatches.allSatisfy {
                $0.reason.contains("--repeat allows it again") || $0.reason.contains("no unused")
            }
        )
    }

    @Test func aReadinessProbeIsRecordedAsAProbeHiddenFromListingsAndNotRequired() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("probed.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let recording = try await Deck.start(.record, tape: tape, routes: [Route(upstream: upstream.endpoint)])
        // What `nc -z` does: connect, then close without a byte.
        _ = try await TestClient.exchange(ByteBuffer?.none, at: recording.address)
        _ = try await TestClient.exchange(recording.address, "hello")
        try await recording.stop()

        let reading = try Tape(readingAt: tape)
        #expect(try reading.sessions().map(\.outcome) == [.probe, .closed])
        var listed: [SessionOutcome] = []
        var query = SessionQuery()
        query.includeProbes = false
        try reading.forEachSession(matching: query) { listed.append($0.outcome) }
        #expect(listed == [.closed])

        let replay = try await Deck.start(.replay, tape: tape, routes: [Route()])
        _ = try await TestClient.exchange(replay.address, "hello")
        let report = try #require(try await replay.stop().replay)
        #expect(report.failures(requireAll: true).isEmpty, "\(report.failures(requireAll: true))")
    }

    @Test func aReplayServerStartsOnceAndKeepsItsListeners() async throws {
        let server = try ReplayServer(tape: try Tape(readingAt: InspectCommandTests.fixture), routes: [Route()])
        let bound = try await server.start()
        let error = await #expect(throws: TapedeckError.self) { try await server.start() }
        #expect(error?.message == "replay server was already started")
        // The first listener still accepts: the connection is counted.
        _ = try await TestClient.exchange(bound[0].address, "")
        let report = await server.shutdown(drainTimeout: .zero)
        #expect(report.connections == 1)
    }
}
