import Foundation
import NIOCore
import Testing

@testable import Tapedeck

/// `tapedeck record` as a process: crash safety, a tape that goes away, exit statuses.
@Suite(.timeLimit(.minutes(3)))
struct RecordCommandTests {
    private func exchange(_ text: String, at address: Endpoint) async throws -> String {
        let connection = try await TestClient.connect(to: address)
        let (bytes, _) = try await connection.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: text))
            outbound.finish()
            return await TestClient.readAll(inbound)
        }
        return String(buffer: bytes)
    }

    @Test func sessionsFinishedBeforeAKillAreWholeAndTheCutOneIsIncomplete() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("crash.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let child = try TapedeckProcess(["record", "--upstream", "\(upstream.endpoint)", "--tape", tapePath])
        let address = try #require(try await child.waitForListening()["default"])
        for index in 0..<20 {
            #expect(try await exchange("finished \(index)", at: address) == "finished \(index)")
        }
        // One session left open across the crash.
        let open = try await TestClient.connect(to: address)
        try await open.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "cut off"))
            var iterator = inbound.makeAsyncIterator()
            _ = try await iterator.next()
            try await Task.sleep(for: .milliseconds(1500))
            child.signal(SIGKILL)
            _ = try await child.waitForExit(timeout: .seconds(10))
        }

        let tape = try Tape(readingAt: tapePath)
        let sessions = try tape.sessions()
        #expect(sessions.count == 21)
        let finished = sessions.filter { $0.outcome == .closed }
        #expect(finished.count == 20)
        for session in finished {
            let events = try tape.events(inSession: session.id!)
            let sent = String(decoding: events.bytes(.clientToUpstream), as: UTF8.self)
            #expect(sent.hasPrefix("finished "))
            #expect(events.bytes(.upstreamToClient) == events.bytes(.clientToUpstream))
            #expect(events.count == Int(session.eventCount))
        }
        let cut = try #require(sessions.first { $0.outcome != .closed })
        #expect(cut.outcome == .incomplete)
        #expect(try tape.events(inSession: cut.id!).bytes(.clientToUpstream) == Data("cut off".utf8))
        #expect(try tape.runs().first?.endedAt == nil)
    }

    @Test func aTapeRemovedWhileRecordingStopsTheRecorderLoudly() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("doomed.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let child = try TapedeckProcess(["record", "--upstream", "\(upstream.endpoint)", "--tape", tapePath])
        let address = try #require(try await child.waitForListening()["default"])
        #expect(try await exchange("kept", at: address) == "kept")
        // A session still open when the recording fails: it is reset at once, without a drain.
        let open = try await TestClient.connect(to: address)
        try FileManager.default.removeItem(atPath: tapePath)
        // The next commit notices.
        _ = try? await exchange("lost", at: address)
        let status = try await child.waitForExit(timeout: .seconds(20))
        try? await open.channel.close()
        #expect(status == 1)
        // Said once: not as a log line, an error line and the error stop() throws, and no drain warning.
        let lines = child.stderr.split(separator: "\n")
        #expect(
            lines.filter { $0.contains("error") } == [
                "tapedeck: error: tape '\(tapePath)' was removed or replaced while recording; stopped accepting, the recording is incomplete"
            ],
            "\(child.stderr)"
        )
        #expect(!child.stderr.contains("drain"), "\(child.stderr)")
    }

    @Test func badTapesAndFlagsExitWithOneLine() async throws {
        let directory = try TemporaryDirectory()
        let corrupt = directory.path("corrupt.tape")
        try Data(repeating: 0x42, count: 4096).write(to: URL(fileURLWithPath: corrupt))
        let result = try await TapedeckProcess.run(["record", "--upstream", "127.0.0.1:9", "--tape", corrupt])
        #expect(result.status == 1)
        #expect(result.stderr == "tapedeck: error: cannot open tape '\(corrupt)': file is not a database\n")

        let missingTape = try await TapedeckProcess.run(["record", "--upstream", "127.0.0.1:9"])
        #expect(missingTape.status == 2)
        #expect(missingTape.stderr == "tapedeck: error: missing expected argument '--tape <file>'\n")
    }

    @Test func recordsEveryRouteOfAConfigIntoOneTape() async throws {
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("routes.tape")
        let upstream = try await TestServer.start(.echo)
        defer { Task { await upstream.stop() } }
        let config = try directory.twoRouteConfig(upstream: upstream.endpoint)
        let child = try TapedeckProcess(["record", "--config", config, "--tape", tapePath, "--label", "two routes"])
        let routes = try await child.waitForListening(count: 2)
        #expect(try await exchange("to alpha", at: try #require(routes["alpha"])) == "to alpha")
        #expect(try await exchange("to beta", at: try #require(routes["beta"])) == "to beta")
        child.signal(SIGTERM)
        #expect(try await child.waitForExit(timeout: .seconds(10)) == 0)

        let tape = try Tape(readingAt: tapePath)
        #expect(try tape.runs().map(\.label) == ["two routes"])
        let sessions = try tape.sessions()
        #expect(Set(sessions.map(\.route)) == ["alpha", "beta"])
        for session in sessions {
            #expect(
                try tape.events(inSession: session.id!).bytes(.clientToUpstream) == Data("to \(session.route)".utf8)
            )
        }
        // A finished tape is a single file: the write-ahead log was folded back in.
        let walSize = (try? FileManager.default.attributesOfItem(atPath: tapePath + "-wal")[.size] as? Int) ?? 0
        #expect(walSize == 0)
    }
}
