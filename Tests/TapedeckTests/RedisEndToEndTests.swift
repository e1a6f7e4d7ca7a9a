import Foundation
import TapedeckTesting
import Testing

@testable import Tapedeck

/// Real `redis-cli` against a real `redis-server`, through Tapedeck.
@Suite(
    .enabled(if: RedisServer.isInstalled, "needs redis-server and redis-cli (installed by .ci/run)"),
    .timeLimit(.minutes(3))
)
struct RedisEndToEndTests {
    @Test func recordsRealRedisCommandsAndReplies() async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("redis.tape")
        let upstream = Endpoint.tcp(host: "127.0.0.1", port: redis.port)

        let replies = try await withRecordingProxy(upstream: upstream, tapePath: tapePath) {
            address throws -> [String] in
            guard case .tcp(_, let port) = address else { throw TestProcessError("expected a TCP address") }
            return try [["SET", "greeting", "hello tape"], ["GET", "greeting"], ["PING"]].map {
                try RedisServer.cli(port: port, $0)
            }
        }
        #expect(replies == ["OK\n", "hello tape\n", "PONG\n"])

        let tape = try Tape(readingAt: tapePath)
        let sessions = try tape.sessions()
        #expect(sessions.count == 3)
        #expect(sessions.allSatisfy { $0.outcome == .closed && $0.upstreamAddress == "\(upstream)" })
        let conversations = try sessions.map { session in
            let events = try tape.events(inSession: session.id!)
            return (
                String(decoding: events.bytes(.clientToUpstream), as: UTF8.self),
                String(decoding: events.bytes(.upstreamToClient), as: UTF8.self)
            )
        }
        // redis-cli may first ask for COMMAND DOCS; the command itself is the last request.
        #expect(conversations[0].0.hasSuffix("*3\r\n$3\r\nSET\r\n$8\r\ngreeting\r\n$10\r\nhello tape\r\n"))
        #expect(conversations[0].1.hasSuffix("+OK\r\n"))
        #expect(conversations[1].0.hasSuffix("*2\r\n$3\r\nGET\r\n$8\r\ngreeting\r\n"))
        #expect(conversations[1].1.hasSuffix("$10\r\nhello tape\r\n"))
        #expect(conversations[2].0.hasSuffix("*1\r\n$4\r\nPING\r\n"))
        #expect(conversations[2].1.hasSuffix("+PONG\r\n"))
    }
}

extension RedisEndToEndTests {
    /// Through the test helpers, as a user's suite would: record against the real server, stop it, and replay
    /// in another order; `requireAll` makes the helper throw unless every session was served and none mismatched.
    @Test func replaysRealRedisCliWithTheServerStopped() async throws {
        let redis = try await RedisServer()
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("fixtures/redis-replay.tape")
        let commands = [["SET", "answer", "42"], ["INCR", "answer"], ["GET", "answer"], ["PING"]]
        let recorded = try await withTapedeck(.record, tape: tapePath, upstream: "127.0.0.1:\(redis.port)") {
            address throws -> [String] in
            try commands.map { try RedisServer.cli(port: address.port!, $0) }
        }
        redis.stop()
        #expect(recorded == ["OK\n", "43\n", "43\n", "PONG\n"])

        // Another order than recorded: the bytes choose the session.
        let replayed = try await withTapedeck(.replay, tape: tapePath, requireAll: true) { address throws -> [String] in
            try commands.reversed().map { try RedisServer.cli(port: address.port!, $0) }
        }
        #expect(replayed == recorded.reversed())
    }
}
