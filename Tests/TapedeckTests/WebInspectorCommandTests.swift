import Foundation
import Testing

@testable import Tapedeck

/// `tapedeck web` and `--web` as a user runs them: the `web URL` line, live sessions while recording, and one
/// error line for bad input.
@Suite(.timeLimit(.minutes(2)))
struct WebInspectorCommandTests {
    @Test(.enabled(if: NginxServer.isInstalled, "needs nginx and curl (installed by .ci/run)"))
    func aRecordingWithWebShowsEachSessionAsItIsRecorded() async throws {
        let nginx = try await NginxServer(files: ["a.txt": Data("alpha\n".utf8)])
        defer { nginx.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("live.tape")
        let record = try TapedeckProcess([
            "record", "--tape", tape, "--upstream", "127.0.0.1:\(nginx.port)", "--listen", "127.0.0.1:0",
            "--web", "127.0.0.1:0",
        ])
        let listening = try await record.waitForListening()
        let web = try await record.waitForLine(prefix: "web ")
        let info = try Self.getJSON(web + "api/info")
        #expect(info["live"] as? Bool == true)
        #expect(info["mode"] as? String == "record")
        #expect(info["sessions"] as? Int == 0)
        for round in 1...2 {
            _ = try NginxServer.curl(port: listening["default"]!.port!, ["/a.txt"])
            // The recorder commits in batches: the session appears within a few seconds, not at once.
            let deadline = ContinuousClock.now.advanced(by: .seconds(10))
            var sessions = 0
            while sessions < round, ContinuousClock.now < deadline {
                sessions = try Self.getJSON(web + "api/info")["sessions"] as? Int ?? 0
                if sessions < round { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(sessions == round)
        }
        let page = try Self.getJSON(web + "api/sessions")
        #expect((page["sessions"] as? [[String: Any]])?.count == 2)
        record.signal(SIGINT)
        #expect(try await record.waitForExit(timeout: .seconds(15)) == 0)
        // The inspector let go of the tape, so the recorder could leave it as one plain file.
        #expect(!FileManager.default.fileExists(atPath: tape + "-wal"))
        #expect(try Tape(readingAt: tape).sessions().count == 2)
    }

    @Test func aReplayWithWebListsEachMismatchAsItHappens() async throws {
        let replay = try TapedeckProcess([
            "replay", "--tape", InspectCommandTests.fixture, "--listen", "127.0.0.1:0", "--web", "127.0.0.1:0",
        ])
        let listening = try await replay.waitForListening()
        let web = try await replay.waitForLine(prefix: "web ")
        #expect(try Self.getJSON(web + "api/info")["mismatches"] as? Int == 0)
        // The fixture's first session sets "hello tape"; this client sets "hello tapf".
        _ = try? await TestClient.exchange(
            listening["default"]!,
            "*3\r\n$3\r\nSET\r\n$8\r\ngreeting\r\n$10\r\nhello tapf\r\n"
        )
        let deadline = ContinuousClock.now.advanced(by: .seconds(10))
        var mismatches = 0
        while mismatches == 0, ContinuousClock.now < deadline {
            mismatches = try Self.getJSON(web + "api/info")["mismatches"] as? Int ?? 0
            if mismatches == 0 { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(mismatches == 1)
        let diagnosis = try Self.getJSON(web + "api/mismatches/1")
        #expect(diagnosis["session"] as? Int == 1)
        #expect(diagnosis["recorded_offset"] as? Int == 41)
        let recorded = try #require(diagnosis["recorded"] as? [String: Any])
        let live = try #require(diagnosis["live"] as? [String: Any])
        let recordedBytes = try #require(Data(base64Encoded: recorded["payload"] as? String ?? ""))
        let liveBytes = try #require(Data(base64Encoded: live["payload"] as? String ?? ""))
        let difference = try #require(recorded["difference"] as? Int)
        #expect(recordedBytes[difference] == UInt8(ascii: "e"))
        #expect(liveBytes[difference] == UInt8(ascii: "f"))
        replay.signal(SIGINT)
        _ = try await replay.waitForExit(timeout: .seconds(15))
    }

    @Test(arguments: [
        (["web", "/nonexistent/x.tape", "--no-open"], 1, "cannot open tape '/nonexistent/x.tape': no such file"),
        (
            ["web", InspectCommandTests.fixture, "--report", "/nonexistent/r.json", "--no-open"], 1,
            "cannot read report"
        ),
        (
            ["web", InspectCommandTests.fixture, "--report", InspectCommandTests.fixture, "--no-open"], 1,
            "is not a replay report"
        ),
        (["web", InspectCommandTests.fixture, "--listen", "udp:127.0.0.1:0"], 2, "speaks HTTP over TCP"),
        (["web", InspectCommandTests.fixture, "--listen", "nowhere"], 2, "invalid address 'nowhere'"),
        (["replay", "--tape", InspectCommandTests.fixture, "--web", "udp:127.0.0.1:0"], 2, "speaks HTTP over TCP"),
    ])
    func badInputGetsOneErrorLine(arguments: [String], status: Int32, message: String) async throws {
        let result = try await TapedeckProcess.run(arguments)
        #expect(result.status == status, "\(result.stderr)")
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
    }

    @Test func webServesUntilSignalledAndSaysWhere() async throws {
        let web = try TapedeckProcess(["web", InspectCommandTests.fixture, "--no-open"])
        let url = try await web.waitForLine(prefix: "web ")
        #expect(url.hasPrefix("http://127.0.0.1:") && url.hasSuffix("/"))
        let info = try Self.getJSON(url + "api/info")
        #expect(info["tape"] as? String == "redis.tape")
        #expect(info["sessions"] as? Int == 3)
        web.signal(SIGTERM)
        #expect(try await web.waitForExit(timeout: .seconds(10)) == 0)
    }

    /// GETs `url` with curl and reads the answer as a JSON object.
    static func getJSON(_ url: String) throws -> [String: Any] {
        guard let curl = NginxServer.curl else { throw TestProcessError("curl is not installed") }
        let result = try ChildProcess.run([curl, "-sS", "--max-time", "10", url], timeout: .seconds(20))
        guard result.status == 0 else { throw TestProcessError("curl exited \(result.status): \(result.output)") }
        return (try JSONSerialization.jsonObject(with: Data(result.output.utf8))) as? [String: Any] ?? [:]
    }
}
