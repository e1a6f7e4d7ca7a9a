import Foundation
import GRDB
import NIOCore
import Testing

@testable import Tapedeck

/// A tape is untrusted input: whatever a crafted fixture holds is shown escaped, and replayed without a trap.
struct HostileTapeTests {
    @Test func fieldsFromATapeAreEscapedForTheTerminal() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("crafted.tape")
        // Clear the screen, set the window title, and flip the text direction.
        try CraftedTape.make(
            at: tape,
            """
            UPDATE sessions SET route = 'evil\u{1B}]0;pwned\u{07}', client_address = '\u{1B}[2J\u{202E}x';
            UPDATE runs SET label = 'label\u{1B}[31m';
            """
        )
        for arguments in [["sessions", tape], ["show", tape, "1"], ["stats", tape]] {
            let result = try await TapedeckProcess.run(arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            #expect(!result.stdout.unicodeScalars.contains { $0 == "\u{1B}" || $0 == "\u{07}" || $0 == "\u{202E}" })
            #expect(result.stdout.contains("evil\\x1b"), "\(arguments): \(result.stdout)")
        }
        let sessions = try await TapedeckProcess.run(["sessions", tape])
        #expect(sessions.stdout.contains("\\x1b[2J\\u{202e}x"))
        #expect(sessions.stdout.contains("label\\x1b[31m"))
    }

    @Test func terminalTextLeavesOrdinaryTextAlone() {
        #expect(TerminalText.escape("redis café 127.0.0.1:6379 a\\b") == "redis café 127.0.0.1:6379 a\\b")
        #expect(TerminalText.escape("a\u{1B}b\\") == "a\\x1bb\\\\")
        #expect(TerminalText.firstControlCharacter(in: "ok") == nil)
        #expect(TerminalText.firstControlCharacter(in: "a\u{9B}b") == "\u{9B}")
    }

    @Test func delaysThatOverflowSaturateInsteadOfTrapping() {
        #expect(ReplayPace.recorded(factor: 1e-300).scale(1_000_000) == .max)
        #expect(ReplayPace.recorded(factor: 0.001).scale(.max) == .max)
        #expect(ReplayPace.recorded(factor: 2).scale(-5) == 0)
        #expect(ReplayPace.recorded(factor: 1e300).description == "1e+300x")
    }

    @Test func aTapeWithOffsetsNearTheLimitReplaysSlowlyWithoutATrap() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("far.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        try await recordExchange("ping", into: tape, upstream: upstream.endpoint)
        let database = try DatabaseQueue(path: tape)
        try await database.write { db in
            try db.execute(sql: "UPDATE events SET offset_ns = 9223372036854775000 WHERE direction = 1")
            try db.execute(sql: "UPDATE sessions SET started_at = -9223372036854775000")
        }
        try database.close()

        let deck = try await Deck.start(
            .replay,
            tape: tape,
            routes: [Route()],
            options: Deck.Options(pace: .recorded(factor: 0.001))
        )
        let connection = try await TestClient.connect(to: deck.address)
        try await connection.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "ping"))
            // The reply is due in about 292 years at this pace: nothing arrives, and nothing traps.
            try await Task.sleep(for: .milliseconds(300))
        }
        let report = try #require(try await deck.stop(drainTimeout: .zero).replay)
        #expect(report.connections == 1)
    }

    @Test func aListenerBeyondLoopbackIsAWarningOnStderrEvenUnderRun() async throws {
        // 192.0.2.1 (TEST-NET-1) is on no interface here: the warning comes first, then binding fails, so the
        // test never listens beyond loopback.
        for arguments in [
            ["proxy", "--listen", "192.0.2.1:0", "--upstream", "127.0.0.1:1"],
            ["run", "--mode", "proxy", "--listen", "192.0.2.1:0", "--upstream", "127.0.0.1:1", "--", "true"],
        ] {
            let result = try await TapedeckProcess.run(arguments)
            let lines = result.stderr.split(separator: "\n")
            #expect(
                lines.first
                    == "tapedeck: warning: route 'default' listens on 192.0.2.1:0, beyond loopback: anyone who can reach that address is served",
                "\(result.stderr)"
            )
            #expect(result.status == 1)
        }
    }
}
