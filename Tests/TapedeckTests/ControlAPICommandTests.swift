import Foundation
import Testing

@testable import Tapedeck

/// `--api` on the command line, as real processes: the `api` line, `TAPEDECK_API` for `run`'s command, a deck
/// with no route, and the flag's errors.
@Suite(.timeLimit(.minutes(3)))
struct ControlAPICommandTests {
    private static let clean: [String: String?] = ["TAPEDECK_MODE": nil]

    @Test func runTellsTheCommandWhereTheAPIListensAndTheCommandCanCreateARoute() async throws {
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        // The command creates a proxy through the API and reads the answer, with Python's standard library.
        let script = """
            import json, os, urllib.request
            api = os.environ["TAPEDECK_API"]
            body = json.dumps({"name": "echo", "upstream": "\(upstream.endpoint)"}).encode()
            answer = json.load(urllib.request.urlopen(urllib.request.Request(f"http://{api}/proxies", body, method="POST")))
            print(api, answer["name"], answer["listen"] != "127.0.0.1:0")
            """
        let python = try #require(PythonFixture.python)
        let result = try await TapedeckProcess.run(
            ["run", "--mode", "proxy", "--api", "127.0.0.1:0", "--", python, "-c", script],
            environment: Self.clean
        )
        #expect(result.status == 0, "\(result.stderr)")
        let fields = result.stdout.trimmingCharacters(in: .newlines).split(separator: " ").map(String.init)
        #expect(fields.count == 3)
        let api = try Endpoint(parsing: fields.first ?? "")
        #expect(api.host == "127.0.0.1" && api.port != 0)
        #expect(fields.dropFirst() == ["echo", "True"])
    }

    @Test func proxyWithTheAPIStartsWithNoRouteAndSaysWhereTheAPIIs() async throws {
        let tapedeck = try TapedeckProcess(["proxy", "--api", "127.0.0.1:0"], environment: Self.clean)
        let api = try await tapedeck.waitForAPI()
        #expect(tapedeck.stdout == "api http://\(api)\n")
        tapedeck.signal(SIGTERM)
        #expect(try await tapedeck.waitForExit(timeout: .seconds(20)) == 0)
    }

    @Test func recordWithTheAPIStartsWithNoRoute() async throws {
        let directory = try TemporaryDirectory()
        let tapedeck = try TapedeckProcess(
            ["record", "--tape", directory.path("empty.tape"), "--api", "127.0.0.1:0"],
            environment: Self.clean
        )
        _ = try await tapedeck.waitForAPI()
        tapedeck.signal(SIGTERM)
        #expect(try await tapedeck.waitForExit(timeout: .seconds(20)) == 0)
    }

    @Test func proxyWithoutTheAPIStillNeedsAnUpstream() async throws {
        let result = try await TapedeckProcess.run(["proxy"], environment: Self.clean)
        #expect(result.status == 2)
        #expect(result.stderr.contains("missing --upstream"))
    }

    @Test func theAPIOnAUDPAddressIsAUsageError() async throws {
        let result = try await TapedeckProcess.run(["proxy", "--api", "udp:127.0.0.1:0"], environment: Self.clean)
        #expect(result.status == 2)
        #expect(result.stderr.contains("the control API speaks HTTP over TCP"))
    }

    @Test func theAPIOnAPortInUseIsOneErrorLine() async throws {
        let taken = try await TestServer.start(.echo)
        defer { Task { await taken.stop() } }
        let result = try await TapedeckProcess.run(
            ["proxy", "--api", "\(taken.endpoint)"],
            environment: Self.clean
        )
        #expect(result.status == 1)
        #expect(result.stderr.contains("cannot listen on \(taken.endpoint) (control API)"), "\(result.stderr)")
    }

    @Test func anAPIBeyondLoopbackIsWarnedAbout() async throws {
        let tapedeck = try TapedeckProcess(["proxy", "--api", "0.0.0.0:0"], environment: Self.clean)
        _ = try await tapedeck.waitForAPI()
        tapedeck.signal(SIGTERM)
        #expect(try await tapedeck.waitForExit(timeout: .seconds(20)) == 0)
        #expect(tapedeck.stderr.contains("warning: the control API listens on 0.0.0.0:0, beyond loopback"))
    }
}
