import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Testing

@testable import Tapedeck

/// The servers, the recorder and the deck under their one start/stop contract, and run as `Service`s in a
/// `ServiceGroup`, as an application runs them.
@Suite(.timeLimit(.minutes(3)))
struct ServiceTests {
    private static let logger = Logger(label: "tapedeck.tests")

    // MARK: Start once, stop once

    @Test func aProxyServerStartsOnceAndASecondShutdownReturnsTheFirstOutcome() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let server = ProxyServer(configuration: try ProxyConfiguration(routes: [Route(upstream: upstream.endpoint)]))
        let address = try await server.start()[0].address
        let again = await #expect(throws: TapedeckError.self) { try await server.start() }
        #expect(again?.message == "proxy server was already started")
        let connection = try await TestClient.connect(to: address)
        try await connection.executeThenClose { inbound, outbound in
            // The first listeners still relay.
            var iterator = inbound.makeAsyncIterator()
            try await outbound.write(ByteBuffer(string: "open"))
            #expect(try await iterator.next().map { String(buffer: $0) } == "open")
            let first = await server.shutdown(drainTimeout: .zero)
            #expect(first.interruptedConnections == 2)
            // Nothing is open now, yet the second shutdown says what the first did.
            #expect(await server.shutdown(drainTimeout: .seconds(5)) == first)
        }
        #expect(await TestClient.isRefused(address))
        let late = await #expect(throws: TapedeckError.self) { try await server.start() }
        #expect(late?.message == "proxy server was already stopped")
    }

    @Test func aReplayServerStopsOnceAndASecondShutdownReturnsTheSameReport() async throws {
        let server = try ReplayServer(tape: try Tape(readingAt: InspectCommandTests.fixture), routes: [Route()])
        let address = try await server.start()[0].address
        _ = try await TestClient.exchange(address, "")
        let report = await server.shutdown(drainTimeout: .zero)
        #expect(report.connections == 1)
        #expect(await server.shutdown() == report)
        let late = await #expect(throws: TapedeckError.self) { try await server.start() }
        #expect(late?.message == "replay server was already stopped")
    }

    @Test func aRecorderFinishesOnceAndItsRunThenReturnsAtOnce() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("once.tape")
        let recorder = try Recorder(tape: try Tape(recordingAt: path), routes: [Route()])
        try await recorder.finish()
        try await recorder.finish()
        try await withTimeout(.seconds(5)) { try await recorder.run() }
        let runs = try Tape(readingAt: path).runs()
        #expect(runs.count == 1 && runs[0].endedAt != nil)
    }

    @Test func aRecorderThatCouldNotWriteThrowsTheSameErrorFromEveryFinish() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("gone.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let route = Route(upstream: upstream.endpoint)
        let recorder = try Recorder(tape: try Tape(recordingAt: path), routes: [route])
        let server = ProxyServer(configuration: try ProxyConfiguration(routes: [route]), recorder: recorder)
        let address = try await server.start()[0].address
        try FileManager.default.removeItem(atPath: path)
        _ = try await TestClient.exchange(address, "lost")
        await server.shutdown()
        let first = await #expect(throws: TapedeckError.self) { try await recorder.finish() }
        #expect(first?.code == .recordingFailed)
        let second = await #expect(throws: TapedeckError.self) { try await recorder.finish() }
        #expect(second == first)
    }

    @Test func aDeckStoppedTwiceAtOnceStopsOnceAndBothGetTheOutcome() async throws {
        let directory = try TemporaryDirectory()
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let deck = try await Deck.start(
            .record,
            tape: directory.path("twice.tape"),
            routes: [Route(upstream: upstream.endpoint)]
        )
        _ = try await TestClient.exchange(deck.address, "once")
        async let first = deck.stop()
        async let second = deck.stop()
        let outcomes = try await [first, second]
        #expect(outcomes[0] == outcomes[1])
        #expect(outcomes[0].recordedSessions == 1)
        #expect(try await deck.stop() == outcomes[0])
    }

    @Test func aRecordingThatFailedIsWhatEveryStopThrows() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("doomed.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let deck = try await Deck.start(
            .record,
            tape: path,
            routes: [Route(upstream: upstream.endpoint)],
            options: Deck.Options(onRecordingFailure: { _ in })
        )
        _ = try await TestClient.exchange(deck.address, "kept")
        try FileManager.default.removeItem(atPath: path)
        _ = try await TestClient.exchange(deck.address, "lost")
        let first = await #expect(throws: TapedeckError.self) { try await deck.stop() }
        #expect(first?.code == .recordingFailed)
        let second = await #expect(throws: TapedeckError.self) { try await deck.stop() }
        #expect(second == first)
    }

    // MARK: In a service group

    @Test func aProxyServerAndItsRecorderInAGroupStartAndFlushTheTapeLast() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("grouped.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        // A Unix socket: its address is known before the server's run() binds it.
        let route = Route(listen: .unix(path: directory.path("proxy.sock")), upstream: upstream.endpoint)
        let recorder = try Recorder(tape: try Tape(recordingAt: path), routes: [route])
        let server = ProxyServer(configuration: try ProxyConfiguration(routes: [route]), recorder: recorder)
        // The recorder first: the group shuts services down in reverse order, so it finishes last.
        let group = ServiceGroup(services: [recorder, server], logger: Self.logger)
        let running = Task { try await group.run() }
        var refused = true
        for _ in 0..<100 where refused {
            try await Task.sleep(for: .milliseconds(20))
            refused = await TestClient.isRefused(route.listen)
        }
        #expect(!refused)
        #expect(try await TestClient.exchange(route.listen, "grouped").reply == "grouped")
        await group.triggerGracefulShutdown()
        // Bounded, with room for a suite that keeps two shared cores busy.
        try await withTimeout(.seconds(60)) { try await running.value }

        let tape = try Tape(readingAt: path)
        #expect(try tape.runs().map { $0.endedAt != nil } == [true])
        // The waits for the listener connected and left at once: one session with bytes.
        let sessions = try tape.sessions().filter { $0.clientBytes > 0 }
        #expect(sessions.count == 1)
        #expect(
            try tape.events(inSession: try #require(sessions.first?.id)).bytes(.clientToUpstream)
                == Data("grouped".utf8)
        )
        #expect(!FileManager.default.fileExists(atPath: directory.path("proxy.sock")))
    }

    @Test func aDeckInAnApplicationsGroupLeavesACompleteTapeAtAGracefulShutdown() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("app.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await recordExchange("old", into: path, upstream: upstream.endpoint)

        let deck = try await Deck.start(
            .record,
            tape: path,
            routes: [Route(upstream: upstream.endpoint)],
            options: Deck.Options(overwrite: true)
        )
        let group = ServiceGroup(services: [deck], logger: Self.logger)
        let running = Task { try await group.run() }
        #expect(try await TestClient.exchange(deck.address, "new one").reply == "new one")
        await group.triggerGracefulShutdown()
        try await withTimeout(.seconds(10)) { try await running.value }

        // The recording replaced the old tape: one complete run, one file.
        let tape = try Tape(readingAt: path)
        #expect(try tape.runs().map { $0.endedAt != nil } == [true])
        #expect(try tape.sessions().map(\.clientBytes) == [7])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path("")) == ["app.tape"])
        // The group's stop is the deck's: stopping again returns its outcome.
        #expect(try await deck.stop().recordedSessions == 1)
    }

    @Test func aGracefulShutdownDrainsTheDeckAndCancellationResetsWhatIsLeft() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let deck = try await Deck.start(
            .proxy,
            tape: nil,
            routes: [Route(upstream: upstream.endpoint)],
            options: Deck.Options(drainTimeout: .seconds(30))
        )
        let group = ServiceGroup(services: [deck], logger: Self.logger)
        let running = Task { try await group.run() }
        let connection = try await TestClient.connect(to: deck.address)
        try await connection.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            try await outbound.write(ByteBuffer(string: "before"))
            #expect(try await iterator.next().map { String(buffer: $0) } == "before")
            await group.triggerGracefulShutdown()
            var refused = false
            for _ in 0..<100 where !refused {
                try await Task.sleep(for: .milliseconds(50))
                refused = await TestClient.isRefused(deck.address)
            }
            #expect(refused)
            // Draining: the open session still relays.
            try await outbound.write(ByteBuffer(string: "during"))
            #expect(try await iterator.next().map { String(buffer: $0) } == "during")
            // Cancelled, the drain ends at once and resets the session.
            let cancelled = ContinuousClock.now
            running.cancel()
            await #expect(throws: IOError.self) { _ = try await iterator.next() }
            #expect(ContinuousClock.now - cancelled < Sanitizer.scaled(.seconds(5)))
        }
        _ = try? await withTimeout(.seconds(10)) { try await running.value }
        #expect(try await deck.stop().interruptedConnections == 2)
    }

    @Test func aDeckInAGroupStopsAtOnceWhenItsTapeCannotBeWritten() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path("doomed.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let deck = try await Deck.start(
            .record,
            tape: path,
            routes: [Route(upstream: upstream.endpoint)],
            options: Deck.Options(onRecordingFailure: { _ in }, drainTimeout: .seconds(30))
        )
        let group = ServiceGroup(services: [deck], logger: Self.logger)
        let running = Task { try await group.run() }
        _ = try await TestClient.exchange(deck.address, "kept")
        try FileManager.default.removeItem(atPath: path)
        _ = try await TestClient.exchange(deck.address, "lost")
        // No graceful shutdown: the failure ends the deck's run, and with it the group.
        let error = await #expect(throws: TapedeckError.self) {
            try await withTimeout(.seconds(20)) { try await running.value }
        }
        #expect(error?.code == .recordingFailed)
        #expect(await TestClient.isRefused(deck.address))
    }

    @Test func aDeckRunsInOneGroupAtATime() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let deck = try await Deck.start(.proxy, tape: nil, routes: [Route(upstream: upstream.endpoint)])
        // One run serves and the other is refused at once; stopping the deck then ends the one that serves.
        let outcomes = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<2 {
                group.addTask {
                    do {
                        try await deck.run()
                        return "served"
                    } catch {
                        return "\(error)"
                    }
                }
            }
            var outcomes = [try await group.next()]
            try await deck.stop()
            outcomes.append(try await group.next())
            return outcomes
        }
        #expect(outcomes == ["deck is already running", "served"])
    }
}
