import Foundation
import Testing

@testable import Tapedeck
@testable import TapedeckTesting

/// The web inspector in a real browser: headless Chromium, driven by Selenium (`fixtures/clients/web_inspector_check.py`),
/// opens `tapedeck web` on a tape recorded from curl against nginx, with the report of a replay where curl asked
/// for another file, and checks what the pages render. Screenshots go to `.build/test-artifacts/web-inspector`.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct WebInspectorBrowserTests {
    static let pythonWithSelenium = PythonFixture.interpreter(importing: ["selenium"])
    static let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static let chromedriver = ["/usr/bin/chromedriver"].first { FileManager.default.isExecutableFile(atPath: $0) }
    static var available: Bool {
        NginxServer.isInstalled && pythonWithSelenium != nil && chromium != nil && chromedriver != nil
    }

    /// Where the screenshots are kept after the run.
    static var artifacts: String {
        ProcessInfo.processInfo.environment["TAPEDECK_TEST_ARTIFACTS"].map { $0 + "/web-inspector" }
            ?? InspectCommandTests.repository.appendingPathComponent(".build/test-artifacts/web-inspector").path
    }

    @Test(.enabled(if: available, "needs nginx, curl, chromium, chromium-driver and python3 with selenium (.ci/run)"))
    func theInspectorShowsCurlSessionsTheirLadderAndWhereAReplayLeftTheTape() async throws {
        let nginx = try await NginxServer(files: [
            "a.txt": Data("alpha\n".utf8), "b.txt": Data("bravo\n".utf8), "c.txt": Data("charlie\n".utf8),
        ])
        defer { nginx.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("nginx.tape")
        // Two sessions: one keep-alive connection asking for a.txt then b.txt, and one asking for a.txt alone.
        try await withTapedeck(.record, tape: tape, upstream: "127.0.0.1:\(nginx.port)") { address throws in
            _ = try NginxServer.curl(port: address.port!, ["/a.txt", "/b.txt"])
            _ = try NginxServer.curl(port: address.port!, ["/a.txt"])
        }
        nginx.stop()
        // The replay: a.txt then c.txt over one connection leaves the tape at the second request's path.
        let report = directory.path("report.json")
        let deck = try await Deck.start(.replay, tape: tape, routes: [Route()])
        let port = deck.address.port!
        _ = try? ChildProcess.run(
            [
                NginxServer.curl!, "-s", "--max-time", "10", "-o", "/dev/null", "-o", "/dev/null",
                "http://127.0.0.1:\(port)/a.txt", "http://127.0.0.1:\(port)/c.txt",
            ],
            timeout: .seconds(30)
        )
        let outcome = try await deck.stop(drainTimeout: .zero)
        let replay = try #require(outcome.replay)
        // curl retries a request whose reused connection died, on a new one: that is a second mismatch.
        try #require(!replay.mismatches.isEmpty, "\(replay)")
        #expect(replay.mismatches[0].closestSession == 1)
        try replay.write(toPath: report)

        let expectation = try Self.expectation(tape: tape)
        let expectPath = directory.path("expect.json")
        try JSONSerialization.data(withJSONObject: expectation).write(to: URL(fileURLWithPath: expectPath))
        let web = try TapedeckProcess(["web", tape, "--report", report, "--no-open", "--listen", "127.0.0.1:0"])
        let url = try await web.waitForLine(prefix: "web ")
        // Emptied first: screenshots left by an earlier run must not stand in for this run's.
        try? FileManager.default.removeItem(atPath: Self.artifacts)
        try FileManager.default.createDirectory(atPath: Self.artifacts, withIntermediateDirectories: true)
        let check = try await offThePool {
            try PythonFixture.run(
                "clients/web_inspector_check.py",
                ["--url", url, "--expect", expectPath, "--screenshots", Self.artifacts],
                python: Self.pythonWithSelenium,
                timeout: .seconds(120)
            )
        }
        web.signal(SIGTERM)
        #expect(try await web.waitForExit(timeout: .seconds(10)) == 0)
        #expect(check.status == 0, "\(check)")
        for page in ["sessions", "session", "mismatch"] {
            let shots = (try? FileManager.default.contentsOfDirectory(atPath: Self.artifacts)) ?? []
            #expect(shots.contains { $0.hasSuffix(".png") && $0.contains(page) }, "no screenshot of the \(page) page")
        }
    }

    /// What the pages must show, read from the tape: its sessions, session 1's events as arrows, its first
    /// request in hex, and the mismatch's differing bytes (`b` recorded, `c` live).
    static func expectation(tape path: String) throws -> [String: Any] {
        let tape = try Tape(readingAt: path)
        defer { try? tape.close() }
        var sessions: [[String: Any]] = []
        try tape.forEachSession(matching: SessionQuery()) { session in
            sessions.append(["id": Int(session.id), "route": session.route, "outcome": session.outcome.rawValue])
        }
        var events: [[String]] = []
        try tape.forEachEvent(inSession: 1) { events.append([$0.direction.rawValue, $0.kind.rawValue]) }
        return [
            "sessions": sessions,
            "ladder": ["session": 1, "events": events],
            "hex_event": ["session": 1, "seq": 0, "first_bytes": "47 45 54 20 2f 61"],
            "mismatch": ["n": 1, "recorded_byte": "62", "live_byte": "63"],
            "downloads": ["session": 1],
        ]
    }
}

extension TapedeckProcess {
    /// Waits until stdout holds a line starting with `prefix` and returns the rest of it.
    func waitForLine(prefix: String, timeout: Duration = .seconds(20)) async throws -> String {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let line = stdout.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) {
                return String(line.dropFirst(prefix.count))
            }
            if exitStatus != nil { throw TestProcessError("tapedeck exited: \(stderr)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TimeoutError()
    }
}
