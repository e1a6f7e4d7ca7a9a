import Foundation
import GRDB
import Testing

@testable import Tapedeck

/// Every bad command line, config and tape that once crashed, hung, truncated or said too little: one table,
/// run against the real executable. Each must end by itself with the expected status, say exactly one line on
/// stderr, and never die of a signal.
struct BadInputTests {
    /// One invocation. `$DIR` in an argument is the test's directory, which holds the hostile tapes below.
    struct Case: Sendable, CustomTestStringConvertible {
        var arguments: [String]
        var status: Int32
        /// A part of the one stderr line; nil for a run that must print nothing on stderr.
        var says: String?
        /// Where stdout goes, when not to a file.
        var standardOutput: String? = nil

        var testDescription: String { arguments.joined(separator: " ") }
    }

    static let cases: [Case] = [
        // Durations, paces and dates out of range (each once a SIGILL).
        Case(
            arguments: ["proxy", "--upstream", "127.0.0.1:1", "--connect-timeout", "1e99s"],
            status: 2,
            says: "invalid duration '1e99s': must be from 0 to 9223372036s"
        ),
        Case(
            arguments: ["proxy", "--upstream", "127.0.0.1:1", "--drain-timeout", "1e300ms"],
            status: 2,
            says: "invalid duration '1e300ms'"
        ),
        Case(
            arguments: ["proxy", "--config", "$DIR/huge-timeout.yaml"],
            status: 1,
            says: "route 1: invalid duration '1e99s': must be from 0"
        ),
        Case(
            arguments: ["replay", "--tape", "$DIR/good.tape", "--pace", "1e-300x"],
            status: 2,
            says: "the factor must be from 0.001x to 1000000x"
        ),
        Case(arguments: ["replay", "--tape", "$DIR/good.tape", "--pace", "0x"], status: 2, says: "invalid pace '0x'"),
        Case(
            arguments: ["sessions", "$DIR/good.tape", "--since", "2262-04-12"],
            status: 2,
            says: "tapes hold times from 1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z"
        ),
        Case(
            arguments: ["sessions", "$DIR/good.tape", "--since", "1600-01-01"],
            status: 2,
            says: "tapes hold times from"
        ),
        Case(
            arguments: ["sessions", "$DIR/good.tape", "--since", "2026-02-30"],
            status: 2,
            says: "month 2 of 2026 has no day 30"
        ),
        Case(
            arguments: ["sessions", "$DIR/good.tape", "--since", "2026-01-01T25:00:00Z"],
            status: 2,
            says: "there is no time 25:00:00 in a day"
        ),
        // Tapes as untrusted input.
        Case(arguments: ["stats", "$DIR/huge-totals.tape"], status: 1, says: "is beyond 64 bits"),
        Case(
            arguments: ["export", "$DIR/extreme-times.tape", "--format", "pcapng", "--output", "$DIR/out.pcapng"],
            status: 0,
            says: nil
        ),
        Case(arguments: ["show", "$DIR/extreme-times.tape", "1"], status: 0, says: nil),
        Case(
            arguments: ["sessions", "$DIR/null-route.tape"],
            status: 1,
            says: "cannot read tape '$DIR/null-route.tape': could not decode String from database value NULL"
        ),
        Case(arguments: ["stats", "$DIR/null-route.tape"], status: 1, says: "database value NULL"),
        Case(
            arguments: ["show", "$DIR/unknown-kind.tape", "1"],
            status: 1,
            says: "session 1 event 1 has an unknown kind code 9"
        ),
        Case(
            arguments: ["export", "$DIR/unknown-direction.tape", "--format", "jsonl", "--output", "-"],
            status: 1,
            says: "has an unknown direction code 7"
        ),
        Case(arguments: ["replay", "--tape", "$DIR/unknown-kind.tape"], status: 1, says: "unknown kind code 9"),
        Case(arguments: ["replay", "--tape", "$DIR/null-id.tape"], status: 1, says: "a session has no id"),
        Case(arguments: ["sessions", "$DIR/future.tape"], status: 1, says: "it was changed by a newer Tapedeck"),
        // Clear errors.
        Case(arguments: ["sessions", "$DIR/good.tape", "--limit", "-1"], status: 2, says: "invalid --limit -1"),
        Case(
            arguments: ["proxy", "--upstream", "127.0.0.1:1", "--connect-timeout", "-5s"],
            status: 2,
            says: "invalid duration '-5s'"
        ),
        Case(
            arguments: ["proxy", "--upstream", "127.0.0.1:1", "--threads", "-2"],
            status: 2,
            says: "invalid --threads -2"
        ),
        Case(
            arguments: ["proxy", "--upstream", "127.0.0.1:1", "--log-level", "bogus"],
            status: 2,
            says: "use one of trace, debug, info, notice, warning, error, critical"
        ),
        Case(
            arguments: ["proxy", "--config", "$DIR"],
            status: 1,
            says: "cannot read config '$DIR': it is a directory"
        ),
        Case(arguments: ["sessions", "$DIR"], status: 1, says: "cannot open tape '$DIR': it is a directory"),
        Case(
            arguments: ["sessions", "/dev/null"],
            status: 1,
            says: "cannot open tape '/dev/null': not a regular file"
        ),
        Case(
            arguments: ["record", "--tape", "/dev/null", "--upstream", "127.0.0.1:1"],
            status: 1,
            says: "not a regular file"
        ),
        Case(
            arguments: ["proxy", "--upstream", "127.0.0.1:1", "--connect-timeout", "0"],
            status: 2,
            says: "the connect timeout must be more than 0"
        ),
        Case(arguments: ["proxy", "--upstream", "127.0.0.1:0"], status: 2, says: "has port 0"),
        Case(
            arguments: [
                "record", "--tape", "$DIR/new.tape", "--upstream", "127.0.0.1:1", "--label", "a\u{1B}]0;x\u{07}",
            ],
            status: 1,
            says: "it holds the control character \\x1b"
        ),
        // Writes that fail are errors; a symbolic link is refused.
        Case(
            arguments: ["export", "$DIR/good.tape", "--format", "jsonl", "--output", "/dev/full"],
            status: 1,
            says: "cannot write '/dev/full': no space left on device"
        ),
        Case(
            arguments: ["show", "$DIR/good.tape", "1"],
            status: 1,
            says: "cannot write standard output: no space left on device",
            standardOutput: "/dev/full"
        ),
        Case(
            arguments: ["sessions", "$DIR/good.tape"],
            status: 1,
            says: "no space left on device",
            standardOutput: "/dev/full"
        ),
        Case(
            arguments: ["export", "$DIR/good.tape", "--format", "pcapng", "--output", "$DIR/link.pcapng"],
            status: 1,
            says: "it is a symbolic link; use --force"
        ),
    ]

    /// Builds the hostile inputs in `directory` from the Redis fixture.
    static func prepare(_ directory: TemporaryDirectory) throws {
        let good = directory.path("good.tape")
        try FileManager.default.copyItem(atPath: InspectCommandTests.fixture, toPath: good)
        func variant(_ name: String, _ sql: String) throws {
            try CraftedTape.make(at: directory.path(name), sql)
        }
        try variant("huge-totals.tape", "UPDATE sessions SET client_bytes = 9223372036854775000")
        try variant(
            "extreme-times.tape",
            "UPDATE sessions SET started_at = 9223372036854775000; UPDATE events SET offset_ns = 9223372036854775000"
        )
        try variant(
            "null-route.tape",
            """
            PRAGMA writable_schema = ON;
            UPDATE sqlite_master SET sql = replace(sql, 'route TEXT NOT NULL', 'route TEXT') WHERE name = 'sessions';
            """
        )
        try variant(
            "null-id.tape",
            """
            PRAGMA writable_schema = ON;
            UPDATE sqlite_master SET sql = replace(sql, 'id INTEGER PRIMARY KEY,', 'id INTEGER,') WHERE name = 'sessions';
            """
        )
        // A new connection sees the edited schema.
        try variant("unknown-kind.tape", "UPDATE events SET kind = 9 WHERE session_id = 1 AND seq = 1")
        try variant("unknown-direction.tape", "UPDATE events SET direction = 7 WHERE session_id = 2 AND seq = 0")
        try variant("future.tape", "INSERT INTO grdb_migrations(identifier) VALUES ('v99')")
        var unchecked = Configuration()
        unchecked.foreignKeysEnabled = false
        let nullID = try DatabaseQueue(path: directory.path("null-id.tape"), configuration: unchecked)
        try nullID.write { db in try db.execute(sql: "UPDATE sessions SET id = NULL WHERE id = 3") }
        try nullID.close()
        let nullRoute = try DatabaseQueue(path: directory.path("null-route.tape"))
        try nullRoute.write { db in try db.execute(sql: "UPDATE sessions SET route = NULL WHERE id = 1") }
        try nullRoute.close()
        try Data("routes:\n  - upstream: 127.0.0.1:1\n    connect_timeout: 1e99s\n".utf8)
            .write(to: URL(fileURLWithPath: directory.path("huge-timeout.yaml")))
        try FileManager.default.createSymbolicLink(
            atPath: directory.path("link.pcapng"),
            withDestinationPath: directory.path("elsewhere.pcapng")
        )
    }

    @Test(arguments: cases)
    func badInputEndsWithOneLineAndNoSignal(_ badInput: Case) async throws {
        let directory = try TemporaryDirectory()
        try Self.prepare(directory)
        let arguments = badInput.arguments.map { $0.replacingOccurrences(of: "$DIR", with: directory.url.path) }
        let result = try await TapedeckProcess.run(
            arguments,
            standardOutput: badInput.standardOutput,
            timeout: .seconds(20)
        )
        #expect(result.status < 128, "ended by a signal: \(result.stderr.prefix(300))")
        #expect(result.status == badInput.status, "\(result.stderr)")
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        if let says = badInput.says?.replacingOccurrences(of: "$DIR", with: directory.url.path) {
            #expect(lines.count == 1, "\(result.stderr)")
            #expect(lines.first?.hasPrefix("tapedeck: error: ") == true, "\(result.stderr)")
            #expect(lines.first?.contains(says) == true, "\(result.stderr)")
        } else {
            #expect(result.stderr.isEmpty)
        }
        // The symbolic link was left pointing where it did, and nothing was written there.
        if arguments.contains(directory.path("link.pcapng")) {
            #expect(!FileManager.default.fileExists(atPath: directory.path("elsewhere.pcapng")))
        }
    }
}
