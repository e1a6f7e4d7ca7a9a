import Foundation
import Testing

@testable import Tapedeck

/// Real clients against real servers: record, stop the server, replay, and require identical output.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct RealServerReplayTests {
    /// Records through a proxy on `port`, then replays on the same port (clients such as curl put the port in
    /// what they send).
    static func recordThenReplay<Output: Equatable & Sendable>(
        upstreamPort: Int,
        stopUpstream: () -> Void,
        clients: [@Sendable (Int) throws -> Output],
        concurrentReplay: Bool
    ) async throws -> (recorded: [Output], replayed: [Output], report: ReplayReport) {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("real.tape")
        let port = try await FreePort.find()
        let listen = Endpoint.tcp(host: "127.0.0.1", port: port)
        let recorded = try await withRecordingProxy(
            upstream: .tcp(host: "127.0.0.1", port: upstreamPort), listen: listen, tapePath: tapePath
        ) { _ throws in
            try clients.map { try $0(port) }
        }
        stopUpstream()

        let server = try ReplayServer(tape: try Tape(readingAt: tapePath), routes: [Route(listen: listen)])
        try await server.start()
        let replayed: [Output]
        do {
            if concurrentReplay {
                replayed = try await withThrowingTaskGroup(of: (Int, Output).self) { group in
                    // Started in reverse order, all at once.
                    for (index, client) in clients.enumerated().reversed() {
                        group.addTask { (index, try client(port)) }
                    }
                    var results = [Output?](repeating: nil, count: clients.count)
                    for try await (index, output) in group { results[index] = output }
                    return results.map { $0! }
                }
            } else {
                replayed = try clients.reversed().map { try $0(port) }.reversed()
            }
        } catch {
            await server.shutdown(drainTimeout: .zero)
            throw error
        }
        return (recorded, replayed, await server.shutdown())
    }

    @Test(.enabled(if: PostgresServer.isInstalled, "needs PostgreSQL 15 and psql (installed by .ci/run)"))
    func psqlAgainstPostgreSQL() async throws {
        let postgres = try await PostgresServer()
        defer { postgres.stop() }
        let queries = [
            "SELECT 1 + 1", "SELECT current_user", "SELECT string_agg(g::text, ',') FROM generate_series(1, 2000) g",
            "SELECT version() LIKE 'PostgreSQL%'",
        ]
        let clients: [@Sendable (Int) throws -> String] = queries.map { sql in { port in try PostgresServer.psql(port: port, sql) } }
        let (recorded, replayed, report) = try await Self.recordThenReplay(
            upstreamPort: postgres.port, stopUpstream: postgres.stop, clients: clients, concurrentReplay: false
        )
        #expect(recorded[0] == "2\n")
        #expect(recorded[1] == "postgres\n")
        #expect(replayed == recorded)
        #expect(report.mismatches.isEmpty)
        #expect(report.unused.isEmpty)
    }

    @Test(.enabled(if: PostgresServer.isInstalled, "needs PostgreSQL 15 and psql (installed by .ci/run)"))
    func sixteenConcurrentPsqlClientsWithIdenticalHandshakes() async throws {
        let postgres = try await PostgresServer()
        defer { postgres.stop() }
        let clients: [@Sendable (Int) throws -> String] = (1...16).map { index in
            { port in try PostgresServer.psql(port: port, "SELECT \(index) * 1000 + \(index)") }
        }
        let (recorded, replayed, report) = try await Self.recordThenReplay(
            upstreamPort: postgres.port, stopUpstream: postgres.stop, clients: clients, concurrentReplay: true
        )
        #expect(recorded == (1...16).map { "\($0 * 1000 + $0)\n" })
        #expect(replayed == recorded)
        #expect(report.replayed.count == 16)
        #expect(report.mismatches.isEmpty)
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
        let (recorded, replayed, report) = try await Self.recordThenReplay(
            upstreamPort: nginx.port, stopUpstream: nginx.stop, clients: clients, concurrentReplay: false
        )
        #expect(recorded[0] == Data("hello from nginx\n".utf8) + big)
        #expect(replayed == recorded)
        #expect(report.replayed.count == 2)
        #expect(report.mismatches.isEmpty)
    }
}
