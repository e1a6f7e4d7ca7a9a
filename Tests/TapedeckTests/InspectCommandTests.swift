import Foundation
import NIOCore
import Testing

@testable import Tapedeck

/// `tapedeck sessions` and `tapedeck show` against the committed fixture tape, compared with golden files.
@Suite(.timeLimit(.minutes(3)))
struct InspectCommandTests {
    static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }
    static var fixture: String { repository.appendingPathComponent("fixtures/redis.tape").path }

    static func golden(_ name: String) throws -> String {
        try String(contentsOf: repository.appendingPathComponent("fixtures/golden/\(name)"), encoding: .utf8)
    }

    @Test(arguments: [
        (["sessions"], "sessions.txt"),
        (["sessions", "--json"], "sessions.json"),
        (["show", "1"], "show-1.txt"),
        (["show", "2", "--hex"], "show-2-hex.txt"),
        (["show", "3", "--json"], "show-3.json"),
    ])
    func matchesTheGoldenOutput(arguments: [String], golden: String) async throws {
        var command = [arguments[0], Self.fixture]
        command += arguments.dropFirst()
        let result = try await TapedeckProcess.run(command)
        #expect(result.status == 0)
        #expect(Self.withoutAges(result.stdout) == (try Self.golden(golden)))
    }

    /// The output with each session's age, which grows every day, masked: `#####` in the table's AGE column, and
    /// no `age_s` field in JSON.
    static func withoutAges(_ output: String) -> String {
        let ageColumn = 87..<92
        return output.split(separator: "\n", omittingEmptySubsequences: false).enumerated().map { index, line in
            if line.hasPrefix("  {") {
                return String(line.replacing(/,"age_s":[0-9]+/, with: ""))
            }
            guard index > 0, line.count > ageColumn.upperBound, line.contains("Z  ") else { return String(line) }
            var characters = Array(line)
            characters.replaceSubrange(ageColumn, with: Array("#####"))
            return String(characters)
        }.joined(separator: "\n")
    }

    @Test func eachSessionsAgeIsHowLongAgoItWasRecorded() async throws {
        let result = try await TapedeckProcess.run(["sessions", Self.fixture, "--json"])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        let now = Int64(Date().timeIntervalSince1970)
        for row in rows {
            let started = try #require(row["started_at"] as? Int64) / 1_000_000_000
            let age = try #require(row["age_s"] as? Int64)
            #expect(abs(now - started - age) <= 60)
        }
        #expect(InspectFormat.age(of: 0, now: 45_000_000_000) == "45s")
        #expect(InspectFormat.age(of: 0, now: 3_600_000_000_000) == "60m")
        #expect(InspectFormat.age(of: 0, now: 36 * 3_600_000_000_000) == "36h")
        #expect(InspectFormat.age(of: 0, now: 30 * 86_400_000_000_000) == "30d")
        #expect(InspectFormat.age(of: 10, now: 0) == "0s")
    }

    @Test func sessionsJSONHasTheDocumentedFields() async throws {
        let result = try await TapedeckProcess.run(["sessions", Self.fixture, "--json"])
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
        #expect(rows.count == 3)
        let expected: Set<String> = [
            "id", "run", "route", "label", "client", "upstream", "started_at", "duration_ns", "client_bytes",
            "upstream_bytes", "events", "outcome", "age_s",
        ]
        for row in rows { #expect(Set(row.keys) == expected) }
        #expect(rows.map { $0["id"] as? Int } == [1, 2, 3])
    }

    @Test func showJSONCarriesBase64Payloads() async throws {
        let result = try await TapedeckProcess.run(["show", Self.fixture, "3", "--json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let events = try #require(object["events"] as? [[String: Any]])
        let first = try #require(events.first)
        #expect(first["direction"] as? String == "client_to_upstream")
        #expect((first["payload"] as? String).flatMap { Data(base64Encoded: $0) } == Data("*1\r\n$4\r\nPING\r\n".utf8))
        #expect(Set(first.keys) == ["session", "seq", "offset_ns", "direction", "kind", "size", "payload"])
    }

    @Test func filtersNarrowTheListing() async throws {
        let limited = try await TapedeckProcess.run(["sessions", Self.fixture, "--limit", "1"])
        #expect(limited.stdout.split(separator: "\n").count == 2)
        let none = try await TapedeckProcess.run(["sessions", Self.fixture, "--outcome", "reset_by_client"])
        #expect(none.stdout.split(separator: "\n").count == 1)
        let since = try await TapedeckProcess.run(["sessions", Self.fixture, "--since", "2100-01-01"])
        #expect(since.stdout.split(separator: "\n").count == 1)
        let route = try await TapedeckProcess.run([
            "sessions", Self.fixture, "--route", "default", "--label", "redis-cli SET, GET, PING", "--json",
        ])
        #expect(try (JSONSerialization.jsonObject(with: Data(route.stdout.utf8)) as? [Any])?.count == 3)
    }

    @Test func longPayloadsAreCutUnlessFull() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("long.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await withRecordingProxy(upstream: upstream.endpoint, tapePath: tapePath) { address throws in
            _ = try await TestClient.exchange(ByteBuffer(string: String(repeating: "x", count: 3000)), at: address)
        }
        let cut = try await TapedeckProcess.run(["show", tapePath, "1"])
        #expect(cut.stdout.contains("more bytes (--full shows all)"))
        let full = try await TapedeckProcess.run(["show", tapePath, "1", "--full"])
        #expect(!full.stdout.contains("more bytes"))
        // Both directions, every byte, however the reads were chunked.
        #expect(full.stdout.filter { $0 == "x" }.count == 6000)
    }

    @Test func badInputIsOneLine() async throws {
        let missing = try await TapedeckProcess.run(["sessions", "/nonexistent/x.tape"])
        #expect(missing.status == 1)
        #expect(missing.stderr == "tapedeck: error: cannot open tape '/nonexistent/x.tape': no such file\n")
        let notATape = try await TapedeckProcess.run([
            "show", Self.repository.appendingPathComponent("Package.swift").path, "1",
        ])
        #expect(notATape.status == 1)
        #expect(notATape.stderr.hasPrefix("tapedeck: error: cannot open tape"))
        let unknown = try await TapedeckProcess.run(["show", Self.fixture, "99"])
        #expect(unknown.status == 1)
        #expect(unknown.stderr == "tapedeck: error: tape '\(Self.fixture)' has no session 99\n")
        let outcome = try await TapedeckProcess.run(["sessions", Self.fixture, "--outcome", "fine"])
        #expect(outcome.status == 2)
    }
}

extension InspectCommandTests {
    @Test func grepFindsBytesAndRegexesWithExcerpts() async throws {
        let plain = try await TapedeckProcess.run(["grep", Self.fixture, "hello"])
        #expect(plain.status == 0)
        #expect(
            plain.stdout
                == "session 1  event 0  →  at 32  SET\\r\\n$8\\r\\ngreeting\\r\\n$10\\r\\nhello tape\\r\\n\nsession 2  event 1  ←  at 5  $10\\r\\nhello tape\\r\\n\n"
        )
        let regex = try await TapedeckProcess.run(["grep", Self.fixture, "P[IO]NG", "--regex"])
        #expect(regex.stdout.split(separator: "\n").count == 2)
        let escaped = try await TapedeckProcess.run(["grep", Self.fixture, "\\r\\n$4\\r\\nPING", "--session", "3"])
        #expect(escaped.stdout.hasPrefix("session 3  event 0"))
        let none = try await TapedeckProcess.run(["grep", Self.fixture, "absent"])
        #expect(none.status == 1)
        #expect(none.stdout.isEmpty)
        let badRegex = try await TapedeckProcess.run(["grep", Self.fixture, "(", "--regex"])
        #expect(badRegex.status == 2)
        #expect(badRegex.stderr == "tapedeck: error: invalid regular expression '('\n")
    }

    /// `(.*a){20}` backtracks exponentially on a long run of `a`s without a match: the search must give up with
    /// one line naming the pattern, not run for years.
    @Test func aCatastrophicRegexGivesUpWithOneLine() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("as.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await recordExchange(String(repeating: "a", count: 4096) + "b", into: tape, upstream: upstream.endpoint)

        let started = ContinuousClock.now
        let slow = try await TapedeckProcess.run(["grep", tape, "(.*a){20}", "--regex"], timeout: .seconds(30))
        #expect(ContinuousClock.now - started < Sanitizer.scaled(.seconds(20)))
        #expect(slow.status == 1)
        #expect(
            slow.stderr
                == "tapedeck: error: regular expression '(.*a){20}' took too long: stopped after 1s on session 1, event 0\n"
        )
        let plain = try await TapedeckProcess.run(["grep", tape, "a{4}b", "--regex"])
        #expect(plain.status == 0)
        // The client's bytes were recorded in chunks as they were read; the match is in the last one.
        #expect(plain.stdout.hasPrefix("session 1  event ") && plain.stdout.contains("aaaab"))
    }

    @Test func aRegexTimeLimitStopsTheSearchInTheLibraryToo() throws {
        let search = try TapeSearch(.regex("(.*a){20}"), regexTimeLimit: .milliseconds(100))
        let started = ContinuousClock.now
        #expect(throws: TapeSearch.RegexTimeout.self) {
            _ = try search.firstMatch(in: Data(repeating: UInt8(ascii: "a"), count: 2048))
        }
        #expect(ContinuousClock.now - started < Sanitizer.scaled(.seconds(5)))
        let quick = try TapeSearch(.regex("a+b"), regexTimeLimit: .milliseconds(100))
        #expect(try quick.firstMatch(in: Data("xxaab".utf8))?.offset == 2)
    }

    @Test func statsTotalsPerRouteAndOutcome() async throws {
        let result = try await TapedeckProcess.run(["stats", Self.fixture, "--json"])
        let statistics = try JSONDecoder().decode(TapeStatistics.self, from: Data(result.stdout.utf8))
        #expect(statistics.sessions == 3)
        #expect(statistics.runs == 1)
        #expect(statistics.events == 15)
        #expect(statistics.bytes == 114)
        #expect(statistics.groups.map(\.outcome) == ["closed"])
        #expect(statistics.largest.map(\.id) == [1, 2, 3])
    }
}
