import Foundation
import Testing

@testable import Tapedeck

/// The end-to-end fixtures work against their real servers directly, with no Tapedeck between: when a test that
/// records and replays them fails, the fixture is not why.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct FixtureSmokeTests {
    @Test(.enabled(if: MotoServer.isInstalled, "needs python3 with moto[server] and boto3 (installed by .ci/run)"))
    func s3ClientAgainstMoto() async throws {
        let moto = try await MotoServer()
        defer { moto.stop() }
        let first = try PythonFixture.s3Client(endpoint: moto.endpoint)
        #expect(first.status == 0, "\(first)")
        #expect(first.stdout == PythonFixture.s3Summary(), "\(first)")
        // Another bucket on the same server: the summary differs by the bucket's name alone.
        let second = try PythonFixture.s3Client(endpoint: moto.endpoint, bucket: "tapedeck-second")
        #expect(second.status == 0, "\(second)")
        #expect(second.stdout == PythonFixture.s3Summary(bucket: "tapedeck-second"), "\(second)")
    }

    /// The S3 client does not retry: against a port that refuses, it fails at once with one error.
    @Test(.enabled(if: PythonFixture.pythonWithAWS != nil, "needs python3 with boto3 (installed by .ci/run)"))
    func s3ClientFailsAtOnceWhenNothingAnswers() throws {
        let closed = try ClosedPort()
        let started = ContinuousClock.now
        let run = try PythonFixture.s3Client(endpoint: "http://\(closed.endpoint)", timeout: .seconds(30))
        #expect(run.status == 1, "\(run)")
        #expect(run.stdout.hasPrefix("error: EndpointConnectionError"), "\(run)")
        #expect(ContinuousClock.now - started < .seconds(20))
    }

    @Test(.enabled(if: PythonFixture.python != nil, "needs python3"))
    func requestIDClientAgainstTheEchoServer() async throws {
        let server = try await PythonFixture.echoServer()
        defer { server.stop() }
        let run = try PythonFixture.requestIDClient(port: server.port, count: 5)
        #expect(run.status == 0, "\(run)")
        #expect(run.stdout == "ok 5\n", "\(run)")
    }

    /// The echo server answers over one keep-alive connection with the id in a header and a JSON body, framed by
    /// Content-Length.
    @Test(.enabled(if: PythonFixture.python != nil, "needs python3"))
    func echoServerEchoesTheRequestIDInAHeaderAndAJSONBody() async throws {
        let server = try await PythonFixture.echoServer()
        defer { server.stop() }
        let connection = try BlockingConnection(to: .tcp(host: "127.0.0.1", port: server.port), timeout: .seconds(10))
        for id in ["first-id", "second-id"] {
            try connection.send("GET /items/\(id) HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: \(id)\r\n\r\n")
            var head = ""
            while !head.hasSuffix("\r\n\r\n"), head.utf8.count < 4_096 { head += try connection.receive(count: 1) }
            #expect(head.hasPrefix("HTTP/1.1 200 "))
            #expect(head.contains("\r\nX-Request-Id: \(id)\r\n"))
            let body = #"{"request_id": "\#(id)", "path": "/items/\#(id)"}"#
            #expect(head.contains("\r\nContent-Length: \(body.utf8.count)\r\n"))
            #expect(try connection.receive(count: body.utf8.count) == body)
        }
    }

    @Test(.enabled(if: PythonFixture.python != nil, "needs python3"))
    func requestIDClientFailsWhenNothingAnswers() throws {
        let closed = try ClosedPort()
        guard case .tcp(_, let port) = closed.endpoint else { throw TestProcessError("not TCP: \(closed.endpoint)") }
        let run = try PythonFixture.requestIDClient(port: port, count: 1, timeout: .seconds(30))
        #expect(run.status == 1, "\(run)")
        #expect(run.stdout.hasPrefix("error: ConnectionRefusedError"), "\(run)")
    }

    @Test(.enabled(if: RedisServer.isInstalled, "needs redis-server and redis-cli (installed by .ci/run)"))
    func redisCLIWithAPasswordAgainstAServerThatRequiresOne() async throws {
        let redis = try await RedisServer(password: "tape-secret")
        defer { redis.stop() }
        #expect(redis.password == "tape-secret")
        #expect(try RedisServer.cli(port: redis.port, password: "tape-secret", ["PING"]) == "PONG\n")
        #expect(try RedisServer.cli(port: redis.port, password: "tape-secret", ["SET", "k", "v"]) == "OK\n")
        #expect(try RedisServer.cli(port: redis.port, password: "tape-secret", ["GET", "k"]) == "v\n")
        #expect(try RedisServer.cli(port: redis.port, ["PING"]).contains("NOAUTH"))
        #expect(try RedisServer.cli(port: redis.port, password: "wrong", ["PING"]).contains("WRONGPASS"))
    }
}
