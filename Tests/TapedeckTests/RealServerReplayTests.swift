import Foundation
import TapedeckTesting
import Testing

@testable import Tapedeck

/// Real clients against real servers: record, stop the server, replay, and require identical output.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct RealServerReplayTests {
    /// Records through Tapedeck with the test helpers, as a user's suite would, then replays, each on a port of
    /// its own (clients that put the port in what they send still match). The replay must serve every recorded
    /// session and mismatch nowhere, or `withTapedeck` throws with the diagnostics.
    static func recordThenReplay<Output: Equatable & Sendable>(
        upstreamPort: Int,
        stopUpstream: () -> Void,
        clients: [@Sendable (Int) throws -> Output],
        concurrentReplay: Bool
    ) async throws -> (recorded: [Output], replayed: [Output]) {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("fixtures/real.tape")
        let recorded = try await withTapedeck(.record, tape: tapePath, upstream: "127.0.0.1:\(upstreamPort)") {
            address throws in
            try clients.map { try $0(address.port!) }
        }
        stopUpstream()

        let replayed = try await withTapedeck(.replay, tape: tapePath, requireAll: true) { address in
            let port = address.port!
            if concurrentReplay {
                return try await withThrowingTaskGroup(of: (Int, Output).self) { group in
                    // Started in reverse order, all at once.
                    for (index, client) in clients.enumerated().reversed() {
                        group.addTask { (index, try client(port)) }
                    }
                    var results = [Output?](repeating: nil, count: clients.count)
                    for try await (index, output) in group { results[index] = output }
                    return results.map { $0! }
                }
            }
            return try clients.reversed().map { try $0(port) }.reversed()
        }
        return (recorded, replayed)
    }

    @Test(.enabled(if: PostgresServer.isInstalled, "needs PostgreSQL 15 and psql (installed by .ci/run)"))
    func psqlAgainstPostgreSQL() async throws {
        let postgres = try await PostgresServer()
        defer { postgres.stop() }
        let queries = [
            "SELECT 1 + 1", "SELECT current_user", "SELECT string_agg(g::text, ',') FROM generate_series(1, 2000) g",
            "SELECT version() LIKE 'PostgreSQL%'",
        ]
        let clients: [@Sendable (Int) throws -> String] = queries.map { sql in
            { port in try PostgresServer.psql(port: port, sql) }
        }
        let (recorded, replayed) = try await Self.recordThenReplay(
            upstreamPort: postgres.port,
            stopUpstream: postgres.stop,
            clients: clients,
            concurrentReplay: false
        )
        #expect(recorded[0] == "2\n")
        #expect(recorded[1] == "postgres\n")
        #expect(replayed == recorded)
    }

    @Test(.enabled(if: PostgresServer.isInstalled, "needs PostgreSQL 15 and psql (installed by .ci/run)"))
    func sixteenConcurrentPsqlClientsWithIdenticalHandshakes() async throws {
        let postgres = try await PostgresServer()
        defer { postgres.stop() }
        let clients: [@Sendable (Int) throws -> String] = (1...16).map { index in
            { port in try PostgresServer.psql(port: port, "SELECT \(index) * 1000 + \(index)") }
        }
        let (recorded, replayed) = try await Self.recordThenReplay(
            upstreamPort: postgres.port,
            stopUpstream: postgres.stop,
            clients: clients,
            concurrentReplay: true
        )
        #expect(recorded == (1...16).map { "\($0 * 1000 + $0)\n" })
        #expect(replayed == recorded)
    }

    @Test(.enabled(if: NginxServer.isInstalled, "needs nginx and curl (installed by .ci/run)"))
    func curlAgainstNginxWithKeepAliveAndAOneMebibyteBody() async throws {
        var big = Data(count: 1 << 20)
        for index in big.indices { big[index] = UInt8(truncatingIfNeeded: index &* 2_654_435_761 >> 7) }
        let nginx = try await NginxServer(files: ["small.txt": Data("hello from nginx\n".utf8), "big.bin": big])
        defer { nginx.stop() }
        let clients: [@Sendable (Int) throws -> Data] = [
            // One curl, two requests: one keep-alive connection.
            { port in try NginxServer.curl(port: port, ["/small.txt", "/big.bin"]) },
            { port in try NginxServer.curl(port: port, ["/small.txt"]) },
        ]
        let (recorded, replayed) = try await Self.recordThenReplay(
            upstreamPort: nginx.port,
            stopUpstream: nginx.stop,
            clients: clients,
            concurrentReplay: false
        )
        #expect(recorded[0] == Data("hello from nginx\n".utf8) + big)
        #expect(replayed == recorded)
    }

    /// curl writes the port it connects to into its Host header. Recorded on one free port and replayed on
    /// another, the requests still match: replay recognizes each side's own listen address.
    @Test(.enabled(if: NginxServer.isInstalled, "needs nginx and curl (installed by .ci/run)"))
    func curlReplaysOnAnotherPortThanRecorded() async throws {
        let nginx = try await NginxServer(files: ["page.html": Data("<h1>tapes</h1>\n".utf8)])
        defer { nginx.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("fixtures/http.tape")
        let (recorded, recordedPort) = try await withTapedeck(.record, tape: tape, upstream: "127.0.0.1:\(nginx.port)")
        {
            address throws in
            (try NginxServer.curl(port: address.port!, ["/page.html"]), address.port!)
        }
        nginx.stop()
        let (replayed, replayedPort) = try await withTapedeck(.replay, tape: tape, requireAll: true) { address throws in
            (try NginxServer.curl(port: address.port!, ["/page.html"]), address.port!)
        }
        #expect(recordedPort != replayedPort)
        #expect(recorded == Data("<h1>tapes</h1>\n".utf8))
        #expect(replayed == recorded)
    }

    /// `curl --parallel` spreads its requests over a pool of keep-alive connections as they come free, so which
    /// connection carries which request changes from run to run. Replay regroups the recorded exchanges: every
    /// request gets its own recorded reply, and none is left out.
    @Test(.enabled(if: NginxServer.isInstalled, "needs nginx and curl (installed by .ci/run)"))
    func curlParallelOverAPoolOfKeepAliveConnections() async throws {
        let names = (1...16).map { "f\($0).txt" }
        var files: [String: Data] = [:]
        for (index, name) in names.enumerated() {
            files[name] = Data(repeating: UInt8(ascii: "a") + UInt8(index), count: (index + 1) * 3000)
        }
        let nginx = try await NginxServer(files: files)
        defer { nginx.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("fixtures/pool.tape")
        @Sendable func fetchAll(_ address: Endpoint, round: Int) throws -> [Data] {
            let outputs = names.map { directory.path("round\(round)-\($0)") }
            let result = try ChildProcess.run(
                [NginxServer.curl!, "-sS", "--fail", "--parallel", "--parallel-max", "4"]
                    + zip(names, outputs).flatMap { name, output in ["-o", output, "http://\(address)/\(name)"] }
            )
            guard result.status == 0 else { throw TestProcessError("curl exited \(result.status): \(result.output)") }
            return try outputs.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        }
        let recorded = try await withTapedeck(.record, tape: tape, upstream: "127.0.0.1:\(nginx.port)") {
            address throws in try fetchAll(address, round: 0)
        }
        nginx.stop()
        #expect(recorded == names.map { files[$0]! })
        #expect(try Tape(readingAt: tape).sessions().count > 1, "curl used a pool of connections")
        for round in 1...3 {
            let replayed = try await withTapedeck(.replay, tape: tape, requireAll: true) { address throws in
                try fetchAll(address, round: round)
            }
            #expect(replayed == recorded, "round \(round)")
        }
    }
}
