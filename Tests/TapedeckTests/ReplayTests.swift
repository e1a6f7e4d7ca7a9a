import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import Tapedeck

/// Record through the in-process proxy, stop the upstream, replay, and require the client to see the same bytes.
@Suite(.timeLimit(.minutes(3)))
struct ReplayTests {
    static func withReplay<T>(
        tapePath: String,
        options: ReplayServer.Options = .init(),
        _ body: (Endpoint, ReplayServer) async throws -> T
    ) async throws -> (T, ReplayReport) {
        let server = try ReplayServer(tape: try Tape(readingAt: tapePath), routes: [Route()], options: options)
        let address = try await server.start()[0].address
        do {
            let result = try await body(address, server)
            return (result, await server.shutdown(drainTimeout: .seconds(5)))
        } catch {
            await server.shutdown(drainTimeout: .zero)
            throw error
        }
    }

    @Test func sixteenClientsReplayedInAnotherOrderGetTheirOwnBytes() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("sixteen.tape")
        let upstream = try await TestServer.start(.countThenReply)
        let requests = (0..<16).map { Payload.random(count: 1000 + 37 * $0, seed: UInt64($0 + 100)) }
        var recorded: [ByteBuffer] = []
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address in
            for request in requests { recorded.append(try await TestClient.exchange(request, at: address).0) }
        }
        await upstream.stop()

        let (replayed, report) = try await Self.withReplay(tapePath: tapePath) { address, _ in
            try await withThrowingTaskGroup(of: (Int, ByteBuffer, TestClient.Ending).self) { group in
                for index in (0..<16).reversed() {
                    group.addTask {
                        let (bytes, ending) = try await TestClient.exchange(requests[index], at: address)
                        return (index, bytes, ending)
                    }
                }
                var results = [ByteBuffer?](repeating: nil, count: 16)
                for try await (index, bytes, ending) in group {
                    #expect(ending == .eof)
                    results[index] = bytes
                }
                return results
            }
        }
        #expect(replayed == recorded.map { Optional($0) })
        #expect(report.connections == 16)
        #expect(report.replayed.count == 16)
        #expect(report.mismatches.isEmpty)
        #expect(report.unused.isEmpty)
    }

    @Test func aBigServerFirstPayloadAndItsHalfCloseComeBackExactly() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("banner.tape")
        let banner = Payload.random(count: 2 << 20, seed: 77)
        try await StreamingReplayTests.recordBanner(banner, into: tapePath)
        let (_, report) = try await Self.withReplay(tapePath: tapePath) { address, _ in
            let connection = try await TestClient.connect(to: address)
            try await connection.executeThenClose { inbound, outbound in
                let (bytes, ending) = await TestClient.readAll(inbound)
                #expect(bytes == banner)
                #expect(ending == .eof, "the upstream's half-close is reproduced")
                try await outbound.write(ByteBuffer(string: "thanks"))
                outbound.finish()
            }
        }
        #expect(report.replayed.count == 1)
        #expect(report.mismatches.isEmpty)
    }

    @Test func aRecordedResetAndARefusedConnectAreReproduced() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("failures.tape")
        let resetting = try await TestServer.start(.resetOnData)
        let endpoint = resetting.endpoint
        try await withRecordingProxy(upstream: endpoint, tapePath: tapePath) { address throws in
            #expect(try await TestClient.exchange(ByteBuffer(string: "boom"), at: address).1 == .reset)
        }
        await resetting.stop()
        // A port nothing listens on: a refused connect, appended as a second run. The client only listens: a
        // write racing the reset would end the connection before the reset is seen.
        let closed = try ClosedPort()
        defer { withExtendedLifetime(closed) {} }  // the port stays ours until the test is done
        try await withRecordingProxy(upstream: closed.endpoint, tapePath: tapePath) { address throws in
            #expect(try await TestClient.exchange(nil, at: address).1 == .reset)
        }
        let (_, report) = try await Self.withReplay(tapePath: tapePath) { address, _ throws in
            #expect(try await TestClient.exchange(ByteBuffer(string: "boom"), at: address).1 == .reset)
            #expect(try await TestClient.exchange(nil, at: address).1 == .reset)
        }
        #expect(report.replayed.count == 2)
    }

    @Test func aClientThatSaysSomethingNewIsResetAndReported() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("mismatch.tape")
        let upstream = try await TestServer.start(.echo)
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address in
            _ = try await TestClient.exchange(ByteBuffer(string: "GET /known HTTP/1.1\r\n\r\n"), at: address)
        }
        await upstream.stop()
        let (_, report) = try await Self.withReplay(tapePath: tapePath) { address, _ throws in
            #expect(
                try await TestClient.exchange(ByteBuffer(string: "GET /other HTTP/1.1\r\n\r\n"), at: address).1
                    == .reset
            )
        }
        let mismatch = try #require(report.mismatches.first)
        #expect(mismatch.closestSession == 1)
        #expect(mismatch.offset == 5)
        #expect(mismatch.expected.hasPrefix("GET /known"))
        #expect(mismatch.actual.hasPrefix("GET /other"))
        #expect(report.unused.map(\.session) == [1])
    }
}

/// The tape committed under `fixtures/`: replayed with no server at all.
struct FixtureReplayTests {
    static var fixture: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("fixtures/redis.tape").path
    }

    @Test func theCommittedRedisTapeReplaysWithNoServer() async throws {
        let tape = try Tape(readingAt: Self.fixture)
        let server = try ReplayServer(tape: tape, routes: [Route()], options: .init(repeatSessions: true))
        let address = try await server.start()[0].address
        let exchanges: [(String, String)] = [
            ("*3\r\n$3\r\nSET\r\n$8\r\ngreeting\r\n$10\r\nhello tape\r\n", "+OK\r\n"),
            ("*2\r\n$3\r\nGET\r\n$8\r\ngreeting\r\n", "$10\r\nhello tape\r\n"),
            ("*1\r\n$4\r\nPING\r\n", "+PONG\r\n"),
        ]
        for (request, reply) in exchanges {
            let (bytes, ending) = try await TestClient.exchange(ByteBuffer(string: request), at: address)
            #expect(String(buffer: bytes) == reply)
            #expect(ending == .eof)
        }
        let report = await server.shutdown()
        #expect(report.mismatches.isEmpty)
        #expect(report.replayed.count == 3)
    }
}

/// `--record-missing`: what the tape lacks is relayed to the real upstream and recorded for next time.
@Suite(.timeLimit(.minutes(3)))
struct RecordMissingTests {
    static func replayRecordingMissing<T>(
        tapePath: String,
        upstream: Endpoint,
        _ body: (Endpoint) async throws -> T
    ) async throws -> (T, ReplayReport) {
        let recorder = try Recorder(
            tape: try Tape(recordingAt: tapePath),
            routes: [Route(upstream: upstream)],
            mode: "replay"
        )
        let server = try ReplayServer(
            tape: try Tape(readingAt: tapePath),
            routes: [Route(upstream: upstream)],
            options: .init(recordMissing: MissingSessionRecording(recorder: recorder))
        )
        let address = try await server.start()[0].address
        let result = try await body(address)
        let report = await server.shutdown()
        try await recorder.finish()
        return (result, report)
    }

    @Test func anUnknownRequestIsRelayedRecordedAndThenReplayed() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("episodes.tape")
        let upstream = try await TestServer.start(.echo)
        let endpoint = upstream.endpoint
        try await withRecordingProxy(upstream: endpoint, tapePath: tapePath) { address throws in
            _ = try await TestClient.exchange(ByteBuffer(string: "known"), at: address)
        }
        let (replies, report) = try await Self.replayRecordingMissing(tapePath: tapePath, upstream: endpoint) {
            address in
            [
                String(buffer: try await TestClient.exchange(ByteBuffer(string: "known"), at: address).0),
                String(buffer: try await TestClient.exchange(ByteBuffer(string: "new episode"), at: address).0),
            ]
        }
        #expect(replies == ["known", "new episode"])
        #expect(report.replayed.count == 1)
        #expect(report.recorded.count == 1)
        #expect(report.mismatches.isEmpty)
        await upstream.stop()

        // The new episode is on tape: with the upstream gone, replay serves it.
        let (_, second) = try await ReplayTests.withReplay(tapePath: tapePath) { address, _ throws in
            #expect(
                String(buffer: try await TestClient.exchange(ByteBuffer(string: "new episode"), at: address).0)
                    == "new episode"
            )
        }
        #expect(second.mismatches.isEmpty)
        #expect(try Tape(readingAt: tapePath).runs().map(\.mode) == ["record", "replay"])
    }

    @Test func aClientFinBeforeTheUpstreamIsConnectedEndsTheNewSessionCleanly() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("fin.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address throws in
            _ = try await TestClient.exchange(ByteBuffer(string: "known"), at: address)
        }
        // The request and its FIN arrive together, before the handoff's connect completes.
        let ((reply, ending), _) = try await Self.replayRecordingMissing(
            tapePath: tapePath,
            upstream: upstream.endpoint
        ) { address in
            try await TestClient.exchange(ByteBuffer(string: "new episode"), at: address)
        }
        #expect(String(buffer: reply) == "new episode")
        #expect(ending == .eof, "the upstream closed in order: the client must not be reset")
        let tape = try Tape(readingAt: tapePath)
        let newest = try #require(try tape.sessions().last)
        #expect(newest.outcome == .closed)
        let kinds = try tape.events(inSession: newest.id!).map { "\($0.direction) \($0.kind)" }
        #expect(kinds.filter { $0 == "clientToUpstream halfClose" }.count == 1)
        #expect(!kinds.contains("upstreamToClient reset"))
    }

    @Test func theGreetingTheTapeAlreadyGaveIsNotRepeated() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("greeting.tape")
        let upstream = try await TestServer.start(.greetThenEcho(ByteBuffer(string: "HELLO\n")))
        defer { Task { await upstream.stop() } }
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address throws in
            #expect(
                String(buffer: try await TestClient.exchange(ByteBuffer(string: "A"), at: address).0) == "HELLO\nA"
            )
        }
        let (reply, report) = try await Self.replayRecordingMissing(tapePath: tapePath, upstream: upstream.endpoint) {
            address in
            String(buffer: try await TestClient.exchange(ByteBuffer(string: "B"), at: address).0)
        }
        // The greeting came from the tape; the real upstream's greeting was recorded but not passed on again.
        #expect(reply == "HELLO\nB")
        #expect(report.recorded.count == 1)
        let tape = try Tape(readingAt: tapePath)
        let newest = try #require(try tape.sessions().last)
        let events = try tape.events(inSession: newest.id!)
        #expect(events.bytes(.upstreamToClient) == Data("HELLO\nB".utf8))
        #expect(events.bytes(.clientToUpstream) == Data("B".utf8))
    }
}
