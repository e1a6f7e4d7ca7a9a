import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import Tapedeck

/// Record through the in-process proxy, stop the upstream, replay, and require the client to see the same bytes.
@Suite(.timeLimit(.minutes(3)))
struct ReplayTests {
    /// Sends `request`, half-closes, and returns everything received and how it ended. A connection reset
    /// before the request is written counts as an ending, not an error.
    static func exchange(_ request: ByteBuffer?, at address: Endpoint) async throws -> (ByteBuffer, TestClient.Ending) {
        let connection: TestClient.Connection
        do {
            connection = try await TestClient.connect(to: address)
        } catch let error as NIOConnectionError
            where error.connectionErrors.contains(where: { ($0.error as? IOError)?.errnoCode == ECONNRESET })
        {
            // Reset so fast that the connect itself saw it.
            return (ByteBuffer(), .reset)
        }
        return try await connection.executeThenClose { inbound, outbound in
            if let request { try? await outbound.write(request) }
            outbound.finish()
            return await TestClient.readAll(inbound)
        }
    }

    static func withReplay<T>(
        tapePath: String,
        options: ReplayServer.Options = .init(),
        _ body: (Endpoint, ReplayServer) async throws -> T
    ) async throws -> (T, ReplayReport) {
        let server = try ReplayServer(tape: try Tape(readingAt: tapePath), routes: [ReplayRoute()], options: options)
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
            for request in requests { recorded.append(try await Self.exchange(request, at: address).0) }
        }
        await upstream.stop()

        let (replayed, report) = try await Self.withReplay(tapePath: tapePath) { address, _ in
            try await withThrowingTaskGroup(of: (Int, ByteBuffer, TestClient.Ending).self) { group in
                for index in (0..<16).reversed() {
                    group.addTask {
                        let (bytes, ending) = try await Self.exchange(requests[index], at: address)
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
        let upstream = try await TestServer.start(.speakFirst(banner))
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address in
            let connection = try await TestClient.connect(to: address)
            try await connection.executeThenClose { inbound, outbound in
                #expect(await TestClient.readAll(inbound).bytes == banner)
                try await outbound.write(ByteBuffer(string: "thanks"))
                outbound.finish()
            }
            #expect(await upstream.log.waitFor { _ in upstream.log.bytesReceived == 6 })
        }
        await upstream.stop()
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
            #expect(try await Self.exchange(ByteBuffer(string: "boom"), at: address).1 == .reset)
        }
        await resetting.stop()
        // The same port, now closed: a refused connect, appended as a second run. The client only listens: a
        // write racing the reset would end the connection before the reset is seen.
        try await withRecordingProxy(upstream: endpoint, tapePath: tapePath) { address throws in
            #expect(try await Self.exchange(nil, at: address).1 == .reset)
        }
        let (_, report) = try await Self.withReplay(tapePath: tapePath) { address, _ throws in
            #expect(try await Self.exchange(ByteBuffer(string: "boom"), at: address).1 == .reset)
            #expect(try await Self.exchange(nil, at: address).1 == .reset)
        }
        #expect(report.replayed.count == 2)
    }

    @Test func aClientThatSaysSomethingNewIsResetAndReported() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("mismatch.tape")
        let upstream = try await TestServer.start(.echo)
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address in
            _ = try await Self.exchange(ByteBuffer(string: "GET /known HTTP/1.1\r\n\r\n"), at: address)
        }
        await upstream.stop()
        let (_, report) = try await Self.withReplay(tapePath: tapePath) { address, _ throws in
            #expect(try await Self.exchange(ByteBuffer(string: "GET /other HTTP/1.1\r\n\r\n"), at: address).1 == .reset)
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
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("fixtures/redis.tape").path
    }

    @Test func theCommittedRedisTapeReplaysWithNoServer() async throws {
        let tape = try Tape(readingAt: Self.fixture)
        let server = try ReplayServer(tape: tape, routes: [ReplayRoute()], options: .init(repeatSessions: true))
        let address = try await server.start()[0].address
        let exchanges: [(String, String)] = [
            ("*3\r\n$3\r\nSET\r\n$8\r\ngreeting\r\n$10\r\nhello tape\r\n", "+OK\r\n"),
            ("*2\r\n$3\r\nGET\r\n$8\r\ngreeting\r\n", "$10\r\nhello tape\r\n"),
            ("*1\r\n$4\r\nPING\r\n", "+PONG\r\n"),
        ]
        for (request, reply) in exchanges {
            let (bytes, ending) = try await ReplayTests.exchange(ByteBuffer(string: request), at: address)
            #expect(String(buffer: bytes) == reply)
            #expect(ending == .eof)
        }
        let report = await server.shutdown()
        #expect(report.mismatches.isEmpty)
        #expect(report.replayed.count == 3)
    }
}
