import Foundation
import TapedeckTesting
import Testing

@testable import Tapedeck

/// A deck's routes held one by one under the control API: recorded when created at runtime, switched between
/// record, replay and proxy, and reported as one replay however many servers a route had.
@Suite(.timeLimit(.minutes(3)))
struct ControlPlaneTests {
    @Test func aRouteCreatedThroughTheAPIIsRecordedAndReplaysAfterASwitch() async throws {
        let upstream = try await TestServer.start(.echo)
        let directory = try TemporaryDirectory()
        let tape = directory.path("api.tape")
        var options = Deck.Options(onWarning: { _ in })
        options.api = .tcp(host: "127.0.0.1", port: 0)
        let deck = try await Deck.start(.record, tape: tape, routes: [], options: options)
        let outcome: DeckOutcome
        do {
            let plane = try #require(deck.controlPlane)
            let created = try await plane.create(Route(name: "echo", upstream: upstream.endpoint), enabled: true)
            let listen = try Endpoint(parsing: created.listen)
            #expect(try await TestClient.exchange(listen, "one").reply == "one")
            #expect(try await TestClient.exchange(listen, "two").reply == "two")
            let sessions = try await plane.sessions()
            #expect(sessions["echo"]?.recorded?.count == 2)
            #expect(sessions["echo"]?.mode == "record")

            // Replay from here on, with the upstream gone: the sessions just recorded answer.
            _ = try await plane.setMode("echo", .replay)
            await upstream.stop()
            #expect(deck.routes == [BoundRoute(name: "echo", address: listen)])
            #expect(try await TestClient.exchange(listen, "two").reply == "two")
            #expect(deck.replayReport?.replayed.count == 1)
            outcome = try await deck.stop()
        } catch {
            _ = try? await deck.stop(drainTimeout: .zero)
            throw error
        }
        #expect(outcome.recordedSessions == 2)
        let replay = try #require(outcome.replay)
        #expect(replay.replayed.map(\.route) == ["echo"])
        #expect(replay.unused.count == 1)
        let recorded = try Tape(readingAt: tape)
        #expect(try recorded.sessions().map(\.route) == ["echo", "echo"])
        #expect(try ReplayServer.routeNames(in: recorded) == ["echo"])
    }

    @Test func aReplayedRouteDisabledAndEnabledReportsAsOneReplay() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("echo.tape")
        let upstream = try await TestServer.start(.echo)
        try await withTapedeck(.record, tape: tape, upstream: "\(upstream.endpoint)") { address in
            for word in ["one", "two", "three"] { _ = try await TestClient.exchange(address, word) }
        }
        await upstream.stop()

        var options = Deck.Options(onWarning: { _ in })
        options.api = .tcp(host: "127.0.0.1", port: 0)
        let deck = try await Deck.start(.replay, tape: tape, routes: [Route()], options: options)
        let outcome: DeckOutcome
        do {
            let plane = try #require(deck.controlPlane)
            let listen = deck.address
            #expect(try await TestClient.exchange(listen, "one").reply == "one")
            _ = try await plane.update("default", listen: nil, upstream: nil, enabled: false)
            #expect(await TestClient.isRefused(listen))
            _ = try await plane.update("default", listen: nil, upstream: nil, enabled: true)
            #expect(try await TestClient.exchange(listen, "two").reply == "two")
            #expect(try await TestClient.exchange(listen, "three").reply == "three")
            outcome = try await deck.stop()
        } catch {
            _ = try? await deck.stop(drainTimeout: .zero)
            throw error
        }
        let report = try #require(outcome.replay)
        #expect(report.connections == 3)
        #expect(report.replayed.count == 3)
        // The first server never served "two" and "three", the second never "one": none is unused overall.
        #expect(report.unused.isEmpty)
        try report.verify(requireAll: true)
    }

    @Test func aRouteOfAReplayingDeckSwitchedToRecordRecordsIntoTheTape() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("grow.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await withTapedeck(.record, tape: tape, upstream: "\(upstream.endpoint)") { address in
            _ = try await TestClient.exchange(address, "old")
        }
        var options = Deck.Options(onWarning: { _ in })
        options.api = .tcp(host: "127.0.0.1", port: 0)
        let route = Route(name: "default", upstream: upstream.endpoint)
        let deck = try await Deck.start(.replay, tape: tape, routes: [route], options: options)
        let outcome: DeckOutcome
        do {
            let plane = try #require(deck.controlPlane)
            let listen = deck.address
            #expect(try await TestClient.exchange(listen, "old").reply == "old")
            _ = try await plane.setMode("default", .record)
            #expect(plane.routeModes == ["default": .record])
            #expect(try await TestClient.exchange(listen, "new").reply == "new")
            _ = try await plane.setMode("default", .replay)
            // The new replay server reads the tape with what was just recorded.
            #expect(try await TestClient.exchange(listen, "new").reply == "new")
            outcome = try await deck.stop()
        } catch {
            _ = try? await deck.stop(drainTimeout: .zero)
            throw error
        }
        #expect(outcome.recordedSessions == 1)
        #expect(outcome.replay?.replayed.count == 2)
        #expect(try Tape(readingAt: tape).sessions().count == 2)
    }

    @Test func theMergedReportBlamesNoServerForSessionsAnotherPlayed() {
        func report(unused: [Int64], incomplete: [Int64] = [], replayed: [Int64] = []) -> ReplayReport {
            var report = ReplayReport()
            report.connections = replayed.count
            report.unused = unused.map { ReplayReport.Unused(route: "r", session: $0) }
            report.incomplete = incomplete.map { ReplayReport.Incomplete(route: "r", session: $0, offset: 5) }
            report.replayed = replayed.map { ReplayReport.Replayed(route: "r", session: $0, client: "c") }
            return report
        }
        let merged = ReplayReport.merged([
            ReplayIncarnation(route: "r", report: report(unused: [2, 3, 4], replayed: [1]), known: [1, 2, 3, 4]),
            ReplayIncarnation(
                route: "r",
                report: report(unused: [1, 4], incomplete: [3], replayed: [2]),
                known: [1, 2, 3, 4]
            ),
            // A server that started after session 5 was recorded, and never served it.
            ReplayIncarnation(route: "r", report: report(unused: [1, 2, 3, 4, 5]), known: [1, 2, 3, 4, 5]),
        ])
        #expect(merged.connections == 2)
        #expect(merged.replayed.map(\.session) == [1, 2])
        #expect(merged.unused.map(\.session) == [4, 5])
        #expect(merged.incomplete.map(\.session) == [3])
    }

    @Test func theMergedReportListsEachFiredToxicOnceInOrder() {
        let first = FiredToxic(
            route: "r",
            toxic: Toxic(kind: .latency),
            session: 1,
            client: "c",
            exchange: 1,
            offset: 0,
            time: 10
        )
        let second = FiredToxic(
            route: "r",
            toxic: Toxic(kind: .resetPeer),
            session: 2,
            client: "c",
            exchange: 1,
            offset: 0,
            time: 20
        )
        var early = ReplayReport()
        early.faults = [first]
        var late = ReplayReport()
        // A later server of the route lists the route's firings from the start.
        late.faults = [first, second]
        let merged = ReplayReport.merged([
            ReplayIncarnation(route: "r", report: late, known: []),
            ReplayIncarnation(route: "r", report: early, known: []),
        ])
        #expect(merged.faults == [first, second])
    }
}
