import Foundation
import Testing

@testable import Tapedeck

/// Toxiproxy's own Python client (toxiproxy-python, unmodified) drives `tapedeck proxy --api`, started with no
/// route on the command line, in front of a real redis-server (`fixtures/clients/toxiproxy_client.py`).
@Suite(
    .enabled(
        if: RedisServer.isInstalled && PythonFixture.pythonWithToxiproxy != nil,
        "needs redis-server and toxiproxy-python (installed by .ci/run)"
    ),
    .timeLimit(.minutes(3))
)
struct ToxiproxyClientTests {
    @Test func toxiproxysClientCreatesDisablesEnablesResetsPopulatesAndDestroysProxies() async throws {
        let output = try await runScenario("lifecycle")
        #expect(
            output.split(separator: "\n").map(String.init) == [
                "ok version", "ok create", "ok exists", "ok disable", "ok enable", "ok down", "ok toxics",
                "ok reset", "ok populate", "ok destroy",
            ]
        )
    }

    /// Latency within 20% at p50, bandwidth within 20%, reset_peer, timeout and limit_data as the client sees
    /// them, then clean traffic once they are removed.
    @Test func toxicsActOnRedisTrafficAndLeaveItCleanOnceRemoved() async throws {
        let output = try await runScenario("toxics")
        let steps = output.split(separator: "\n").map { $0.split(separator: " ").prefix(2).joined(separator: " ") }
        #expect(
            steps == [
                "ok latency", "ok bandwidth", "ok reset_peer", "ok timeout", "ok limit_data", "ok clean",
            ]
        )
    }

    /// Runs a scenario of the client script against a fresh redis-server and `tapedeck proxy --api 127.0.0.1:0`,
    /// and returns what it printed; a failed scenario fails the test with the script's output.
    private func runScenario(_ scenario: String) async throws -> String {
        let redis = try await RedisServer()
        defer { redis.stop() }
        let tapedeck = try TapedeckProcess(["proxy", "--api", "127.0.0.1:0"])
        let api = try await tapedeck.waitForAPI()
        #expect(tapedeck.stdout == "api http://\(api)\n")
        let redisPort = redis.port
        let run = try await offThePool {
            try PythonFixture.run(
                "clients/toxiproxy_client.py",
                [scenario, "\(api)", "\(redisPort)"],
                python: PythonFixture.pythonWithToxiproxy,
                timeout: .seconds(90)
            )
        }
        #expect(run.status == 0, "\(run)\ntapedeck stderr:\n\(tapedeck.stderr.suffix(2_000))")
        tapedeck.signal(SIGTERM)
        #expect(try await tapedeck.waitForExit(timeout: .seconds(20)) == 0)
        return run.stdout
    }
}

extension TapedeckProcess {
    /// Waits until stdout holds the `api http://HOST:PORT` line and returns the address.
    func waitForAPI(timeout: Duration = .seconds(20)) async throws -> Endpoint {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let line = stdout.split(separator: "\n").first(where: { $0.hasPrefix("api http://") }) {
                return try Endpoint(parsing: String(line.dropFirst("api http://".count)))
            }
            if exitStatus != nil { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestProcessError("no api line; stderr: \(stderr.suffix(1_000))")
    }
}
