import Foundation
import NIOCore
import Testing

@testable import Tapedeck

/// The `tapedeck proxy` executable as users run it: exit statuses, error lines, the listening line, signals.
@Suite(.timeLimit(.minutes(3)))
struct ProxyCommandTests {
    /// The error lines on stderr; every failure must produce exactly one.
    private func errorLines(_ stderr: String) -> [Substring] {
        stderr.split(separator: "\n").filter { $0.hasPrefix("tapedeck: error: ") }
    }

    @Test(arguments: [
        (["proxy", "--bogus"], "tapedeck: error: unknown option '--bogus'"),
        (["proxy"], "tapedeck: error: missing --upstream (or --config FILE)"),
        (
            ["proxy", "--upstream", "nowhere"],
            "tapedeck: error: invalid address 'nowhere': expected HOST:PORT or unix:/path"
        ),
        (
            ["proxy", "--upstream", "127.0.0.1:1", "--listen", "127.0.0.1:99999"],
            "tapedeck: error: invalid address '127.0.0.1:99999': port must be a number from 0 to 65535"
        ),
        (
            ["proxy", "--upstream", "127.0.0.1:1", "--connect-timeout", "soon"],
            "tapedeck: error: invalid duration 'soon': use a number with ms, s, m, h or d, as 5s"
        ),
        (
            ["proxy", "--config", "x.yaml", "--upstream", "127.0.0.1:1"],
            "tapedeck: error: --config cannot be combined with --listen or --upstream"
        ),
        (["fly"], "tapedeck: error: unexpected argument 'fly'"),
    ])
    func usageErrorsExitTwoWithOneLine(arguments: [String], message: String) async throws {
        let result = try await TapedeckProcess.run(arguments)
        #expect(result.status == 2)
        #expect(result.stderr == message + "\n")
        #expect(result.stdout.isEmpty)
    }

    @Test func portInUseExitsOneWithOneLine() async throws {
        let occupant = try await TestServer.start(.echo)
        defer { Task { await occupant.stop() } }
        let result = try await TapedeckProcess.run([
            "proxy", "--listen", "\(occupant.endpoint)", "--upstream", "127.0.0.1:9",
        ])
        #expect(result.status == 1)
        #expect(
            errorLines(result.stderr) == [
                "tapedeck: error: cannot listen on \(occupant.endpoint) (route 'default'): address already in use"
            ]
        )
    }

    @Test func unreadableOrBrokenConfigExitsOneWithOneLine() async throws {
        let missing = try await TapedeckProcess.run(["proxy", "--config", "/nonexistent/tapedeck.yaml"])
        #expect(missing.status == 1)
        #expect(
            errorLines(missing.stderr) == [
                "tapedeck: error: cannot read config '/nonexistent/tapedeck.yaml': no such file"
            ]
        )

        let file = FileManager.default.temporaryDirectory.appendingPathComponent(
            "broken-\(UInt32.random(in: 0...UInt32.max)).yaml"
        )
        try Data("routes:\n  - name: x\n    upstream: [unclosed\n".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let broken = try await TapedeckProcess.run(["proxy", "--config", file.path])
        #expect(broken.status == 1)
        #expect(errorLines(broken.stderr).count == 1)
        #expect(broken.stderr.hasPrefix("tapedeck: error: invalid config '\(file.path)': "))
    }

    @Test func helpAndVersionExitZero() async throws {
        let help = try await TapedeckProcess.run(["proxy", "--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("--upstream"))
        let version = try await TapedeckProcess.run(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout == tapedeckVersion + "\n")
    }

    @Test func printsEveryBoundRouteThenRelaysAndExitsZeroOnSIGTERM() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(
            "routes-\(UInt32.random(in: 0...UInt32.max)).json"
        )
        let json = """
            {"routes": [{"name": "first", "upstream": "\(upstream.endpoint)"},
                        {"name": "second", "listen": "[::1]:0", "upstream": "\(upstream.endpoint)"}]}
            """
        try Data(json.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }

        let child = try TapedeckProcess(["proxy", "--config", file.path])
        let routes = try await child.waitForListening(count: 2)
        #expect(Set(routes.keys) == ["first", "second"])
        for (_, address) in routes {
            let connection = try await TestClient.connect(to: address)
            let (echo, _) = try await connection.executeThenClose { inbound, outbound in
                try await outbound.write(ByteBuffer(string: "hi"))
                outbound.finish()
                return await TestClient.readAll(inbound)
            }
            #expect(String(buffer: echo) == "hi")
        }
        child.signal(SIGTERM)
        #expect(try await child.waitForExit(timeout: .seconds(10)) == 0)
    }

    @Test func sigintDrainsOpenSessionsAndASecondSignalExitsAtOnce() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let child = try TapedeckProcess(["proxy", "--upstream", "\(upstream.endpoint)", "--drain-timeout", "30s"])
        let address = try #require(try await child.waitForListening()["default"])
        let connection = try await TestClient.connect(to: address)
        try await connection.executeThenClose { inbound, outbound in
            var iterator = inbound.makeAsyncIterator()
            try await outbound.write(ByteBuffer(string: "one"))
            #expect(try await iterator.next().map { String(buffer: $0) } == "one")

            child.signal(SIGINT)
            try await Task.sleep(for: .milliseconds(300))
            // Draining: the open session still works, new ones are refused.
            try await outbound.write(ByteBuffer(string: "two"))
            #expect(try await iterator.next().map { String(buffer: $0) } == "two")
            #expect(await TestClient.isRefused(address))

            let started = ContinuousClock.now
            child.signal(SIGINT)
            #expect(try await child.waitForExit(timeout: .seconds(20)) == 128 + SIGINT)
            // At once: well before the 30 s drain timeout would have ended it, with room for a suite that keeps two
            // shared cores busy.
            #expect(ContinuousClock.now - started < Sanitizer.scaled(.seconds(15)))
        }
    }

    @Test func sessionsEndingDuringTheDrainLetTheProcessExitZero() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let child = try TapedeckProcess(["proxy", "--upstream", "\(upstream.endpoint)", "--drain-timeout", "30s"])
        let address = try #require(try await child.waitForListening()["default"])
        let connection = try await TestClient.connect(to: address)
        try await connection.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "x"))
            var iterator = inbound.makeAsyncIterator()
            _ = try await iterator.next()
            child.signal(SIGTERM)
            try await Task.sleep(for: .milliseconds(200))
            outbound.finish()
            #expect(try await iterator.next() == nil)
        }
        #expect(try await child.waitForExit(timeout: .seconds(10)) == 0)
    }
}
