import Foundation
import Testing

@testable import Tapedeck

/// `tapedeck scan` as a CI job runs it: findings on stdout, a summary on stderr, and exit statuses that tell
/// "found" from "broken".
extension SecretScannerTests {
    /// A tape with a Redis password in session 1 and a cookie and a JWT in session 3.
    static func leakyTape(in directory: TemporaryDirectory) throws -> String {
        let path = directory.path("leaky.tape")
        try ConversationTape.make(
            at: path,
            [
                [.client("*2\r\n$4\r\nAUTH\r\n$8\r\nhunter42\r\n"), .upstream("+OK\r\n")],
                [.client("*1\r\n$4\r\nPING\r\n"), .upstream("+PONG\r\n")],
                [
                    .client("GET / HTTP/1.1\r\nCookie: a=b\r\n\r\n"),
                    .upstream("HTTP/1.1 200 OK\r\n\r\neyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.c2ln"),
                ],
            ]
        )
        return path
    }

    @Test func scanPrintsOneLinePerFindingAndExitsOne() async throws {
        let directory = try TemporaryDirectory()
        let result = try await TapedeckProcess.run(["scan", try Self.leakyTape(in: directory)])
        #expect(result.status == 1)
        #expect(
            result.stdout == """
                session 1 event 0 offset 18 client redis-auth  *2\\r\\n$4\\r\\nAUTH\\r\\n$8\\r\\n********\\r\\n
                session 3 event 0 offset 24 client http-auth  GET / HTTP/1.1\\r\\nCookie: ***\\r\\n\\r\\n
                session 3 event 1 offset 19 upstream jwt  HTTP/1.1 200 OK\\r\\n\\r\\ney************************************ln

                """
        )
        #expect(result.stderr == "3 likely secrets in 2 sessions\n")
    }

    @Test func aCleanTapeExitsZero() async throws {
        let result = try await TapedeckProcess.run(["scan", InspectCommandTests.fixture])
        #expect(result.status == 0)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr == "no likely secrets\n")
        let json = try await TapedeckProcess.run(["scan", InspectCommandTests.fixture, "--json"])
        #expect(json.status == 0)
        #expect(json.stdout == "[]\n")
    }

    @Test func scanJSONIsAnArrayOfFindings() async throws {
        let directory = try TemporaryDirectory()
        let result = try await TapedeckProcess.run(["scan", try Self.leakyTape(in: directory), "--json"])
        #expect(result.status == 1)
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        #expect(rows.count == 3)
        for row in rows {
            #expect(Set(row.keys) == ["session", "seq", "offset", "direction", "kind", "excerpt"])
        }
        #expect(rows.map { $0["kind"] as? String } == ["redis-auth", "http-auth", "jwt"])
        #expect(
            rows.map { $0["direction"] as? String } == [
                "client_to_upstream", "client_to_upstream", "upstream_to_client",
            ]
        )
        #expect(rows.first?["excerpt"] as? String == "*2\\r\\n$4\\r\\nAUTH\\r\\n$8\\r\\n********\\r\\n")
        let decoded = try JSONDecoder().decode([SecretFinding].self, from: Data(result.stdout.utf8))
        #expect(decoded.map(\.sessionID) == [1, 3, 3])
    }

    /// Status 1 means "found", so errors take 2, and are still one line.
    @Test func scanErrorsExitTwo() async throws {
        let missing = try await TapedeckProcess.run(["scan", "/nonexistent/x.tape"])
        #expect(missing.status == 2)
        #expect(missing.stderr == "tapedeck: error: cannot open tape '/nonexistent/x.tape': no such file\n")
        let notATape = try await TapedeckProcess.run([
            "scan", InspectCommandTests.repository.appendingPathComponent("Package.swift").path,
        ])
        #expect(notATape.status == 2)
        #expect(notATape.stderr.hasPrefix("tapedeck: error: cannot open tape"))
        #expect(notATape.stderr.split(separator: "\n").count == 1)
        let usage = try await TapedeckProcess.run(["scan"])
        #expect(usage.status == 2)
    }

    /// A tape no Tapedeck would write, or output that cannot be written, is an error like any other: 2.
    @Test func scanOfAHostileTapeOrToAFullDiskExitsTwo() async throws {
        let directory = try TemporaryDirectory()
        try BadInputTests.prepare(directory)
        let unknownKind = try await TapedeckProcess.run(["scan", directory.path("unknown-kind.tape")])
        #expect(unknownKind.status == 2)
        #expect(unknownKind.stderr.hasSuffix("session 1 event 1 has an unknown kind code 9\n"))
        let future = try await TapedeckProcess.run(["scan", directory.path("future.tape")])
        #expect(future.status == 2)
        #expect(future.stderr.contains("it was changed by a newer Tapedeck"))
        let full = try await TapedeckProcess.run(
            ["scan", InspectCommandTests.fixture, "--json"],
            standardOutput: "/dev/full"
        )
        #expect(full.status == 2)
        #expect(full.stderr == "tapedeck: error: cannot write standard output: no space left on device\n")
    }
}
