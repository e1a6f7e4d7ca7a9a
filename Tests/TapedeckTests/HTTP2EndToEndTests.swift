import Foundation
import Testing

@testable import Tapedeck

/// HTTP/2 through its lens, with real clients and servers: grpcio (default channel options, so PING frames with
/// random payloads, and calls with deadlines) against a grpcio service, and curl with prior knowledge against nginx;
/// recorded, then replayed on another port with the upstream stopped.
@Suite(.timeLimit(.minutes(3)))
struct HTTP2EndToEndTests {
    static let grpcAvailable = PythonFixture.pythonWithGRPC != nil
    static let nginxAvailable = NginxServer.isInstalled

    /// `record` arguments for a route to 127.0.0.1:`upstream`.
    static func recordRoute(to upstream: Int, tape: String) -> [String] {
        ["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:\(upstream)", "--tape", tape]
    }

    /// What every worker prints when all its calls are answered as recorded.
    static func answers(workers: Int) -> String {
        (0..<workers).map { PythonFixture.grpcAnswers(worker: $0) }.joined()
    }

    // MARK: gRPC

    /// Eight workers on two channels make unary, server-streaming, client-streaming, bidirectional and failing
    /// calls at once, with deadlines; replayed on another port with the service stopped, they get the same answers
    /// and statuses, and the replay counts no mismatch.
    @Test(.enabled(if: HTTP2EndToEndTests.grpcAvailable, "needs python3 with grpcio (.ci/run)"))
    func grpcioCallsOfEveryKindReplayOnAnotherPortWithTheServiceStopped() async throws {
        let service = try await PythonFixture.grpcServer()
        defer { service.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("grpc.tape")
        let expected = Self.answers(workers: 8)
        let (recorded, _) = try await UDPEndToEndTests.record(Self.recordRoute(to: service.port, tape: tape)) { ports in
            try PythonFixture.grpcCalls(port: ports["default"]!, workers: 8, channels: 2)
        }
        service.stop()
        #expect(recorded.status == 0 && recorded.stdout == expected, "\(recorded)")

        let (replayed, status, stderr) = try await UDPEndToEndTests.replay(
            ["--listen", "127.0.0.1:0", "--tape", tape, "--strict", "--require-all"]
        ) { ports in
            try PythonFixture.grpcCalls(port: ports["default"]!, workers: 8, channels: 2)
        }
        #expect(replayed.status == 0 && replayed.stdout == expected, "\(replayed)")
        #expect(status == 0, "\(stderr)")
        #expect(stderr.contains("0 mismatched, 0 unused"), "\(stderr)")
    }

    /// A worker the tape never heard gets UNIMPLEMENTED on every call, with a message that names replay (not
    /// DEADLINE_EXCEEDED: replay answers at once rather than let the call wait); the others are served as recorded,
    /// and a strict replay fails.
    @Test(.enabled(if: HTTP2EndToEndTests.grpcAvailable, "needs python3 with grpcio (.ci/run)"))
    func aCallTheTapeNeverHeardFailsAtOnceWithUnimplemented() async throws {
        let service = try await PythonFixture.grpcServer()
        defer { service.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("grpc.tape")
        let (recorded, _) = try await UDPEndToEndTests.record(Self.recordRoute(to: service.port, tape: tape)) { ports in
            try PythonFixture.grpcCalls(port: ports["default"]!, workers: 2, channels: 1)
        }
        service.stop()
        #expect(recorded.status == 0, "\(recorded)")

        let (replayed, status, stderr) = try await UDPEndToEndTests.replay(
            ["--listen", "127.0.0.1:0", "--tape", tape, "--strict"]
        ) { ports in
            try PythonFixture.grpcCalls(port: ports["default"]!, workers: 3, channels: 1)
        }
        let lines = replayed.stdout.split(separator: "\n").map(String.init)
        #expect(
            lines.filter { $0.hasPrefix("w00 ") || $0.hasPrefix("w01 ") }.joined(separator: "\n") + "\n"
                == Self.answers(workers: 2),
            "\(replayed)"
        )
        let unknown = lines.filter { $0.hasPrefix("w02 ") }
        #expect(
            unknown.count == 5 && unknown.allSatisfy { $0.contains("UNIMPLEMENTED tapedeck replay") },
            "\(replayed)"
        )
        #expect(status == 3, "\(stderr)")
        #expect(stderr.contains("5 mismatched"), "\(stderr)")
    }

    // MARK: curl and nginx

    /// Requests with curl's prior knowledge of HTTP/2, to nginx serving h2c: a small file, a larger one, one that
    /// is missing and a HEAD; replayed on another port with nginx stopped, the same statuses and bodies. (No POST:
    /// nginx answers one to a static file with 405 and a reset that curl 7.88 reports as an error, depending on
    /// timing.)
    @Test(.enabled(if: HTTP2EndToEndTests.nginxAvailable, "needs nginx and curl"))
    func curlWithPriorKnowledgeReplaysNginxOnAnotherPort() async throws {
        let big = Data((0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 8) })
        let nginx = try await NginxServer(files: ["a.txt": Data("hello h2\n".utf8), "big.bin": big], http2: true)
        defer { nginx.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("nginx.tape")
        @Sendable func fetchAll(_ port: Int) throws -> [String] {
            try [("/a.txt", false), ("/big.bin", false), ("/missing", false), ("/a.txt", true)].map { path, head in
                try Self.curl(port: port, path: path, head: head, directory: directory)
            }
        }
        let (recorded, _) = try await UDPEndToEndTests.record(Self.recordRoute(to: nginx.port, tape: tape)) { ports in
            try fetchAll(ports["default"]!)
        }
        nginx.stop()
        #expect(recorded.count == 4)
        #expect(recorded[0] == "200 2 hello h2\n", "\(recorded)")
        #expect(recorded[1] == "200 2 \(big.count) bytes", "\(recorded)")
        #expect(recorded[2].hasPrefix("404 2 "), "\(recorded)")
        #expect(recorded[3].hasPrefix("200 2 HTTP/2 200"), "\(recorded)")

        let (replayed, status, stderr) = try await UDPEndToEndTests.replay(
            ["--listen", "127.0.0.1:0", "--tape", tape, "--strict", "--require-all"]
        ) { ports in
            try fetchAll(ports["default"]!)
        }
        #expect(replayed == recorded)
        #expect(status == 0, "\(stderr)")
        #expect(stderr.contains("4 sessions replayed, 0 mismatched, 0 unused"), "\(stderr)")
    }

    /// `curl --http2` asks each request to upgrade to h2c (`Upgrade: h2c`), which hypercorn accepts: the request
    /// becomes stream 1 of an HTTP/2 connection. Replayed on another port with the upstream stopped and in another
    /// order, each gets its own response, over HTTP/2.
    @Test(.enabled(if: PythonFixture.pythonWithHypercorn != nil && NginxServer.curl != nil, "needs hypercorn and curl"))
    func curlUpgradingToH2CReplaysOnAnotherPort() async throws {
        let server = try await PythonFixture.h2cUpgradeServer()
        defer { server.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("h2c.tape")
        @Sendable func fetch(_ port: Int, _ paths: [String]) throws -> [String] {
            try paths.map { path in
                guard let curl = NginxServer.curl else { throw TestProcessError("curl is not installed") }
                let result = try ChildProcess.run(
                    [
                        curl, "-sS", "--http2", "--max-time", "20", "-w", " %{http_version}",
                        "http://127.0.0.1:\(port)\(path)",
                    ]
                )
                guard result.status == 0 else {
                    throw TestProcessError("curl exited \(result.status): \(result.output)")
                }
                return result.output
            }
        }
        let paths = ["/a", "/b?x=1", "/c"]
        let (recorded, _) = try await UDPEndToEndTests.record(Self.recordRoute(to: server.port, tape: tape)) { ports in
            try fetch(ports["default"]!, paths)
        }
        server.stop()
        #expect(recorded == ["GET /a http/2 body=\n 2", "GET /b?x=1 http/2 body=\n 2", "GET /c http/2 body=\n 2"])
        let (replayed, status, stderr) = try await UDPEndToEndTests.replay(
            ["--listen", "127.0.0.1:0", "--tape", tape, "--strict", "--require-all"]
        ) { ports in
            try fetch(ports["default"]!, paths.reversed())
        }
        #expect(replayed == recorded.reversed())
        #expect(status == 0, "\(stderr)")
        #expect(stderr.contains("3 sessions replayed, 0 mismatched, 0 unused"), "\(stderr)")
    }

    /// One request with curl over h2c with prior knowledge (one connection each: curl 7.88 cannot reuse one): the
    /// status, the HTTP version and the body, or its size when it is large; with `head`, a HEAD request.
    static func curl(port: Int, path: String, head: Bool, directory: TemporaryDirectory) throws -> String {
        guard let curl = NginxServer.curl else { throw TestProcessError("curl is not installed") }
        let output = directory.path("body-\(UUID().uuidString)")
        let result = try ChildProcess.run(
            [
                curl, "-sS", "--http2-prior-knowledge", "--max-time", "20", "-o", output, "-w",
                "%{http_code} %{http_version}",
            ]
                + (head ? ["--head"] : []) + ["http://127.0.0.1:\(port)\(path)"]
        )
        guard result.status == 0 else { throw TestProcessError("curl exited \(result.status): \(result.output)") }
        let body = (try? Data(contentsOf: URL(fileURLWithPath: output))) ?? Data()
        return result.output + " "
            + (body.count > 1_000 ? "\(body.count) bytes" : String(decoding: body, as: UTF8.self))
    }
}
