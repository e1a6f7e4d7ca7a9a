import Foundation
import Testing

@testable import Tapedeck

/// WebSocket routes with Python's `websockets` on both sides, recorded through `tapedeck record`, then replayed with
/// the upstream stopped: every connection has a fresh `Sec-WebSocket-Key` and masks every frame with fresh random
/// keys, and the client checks the accept value, so nothing would replay byte for byte.
@Suite(.timeLimit(.minutes(3)))
struct WebSocketEndToEndTests {
    static let available = PythonFixture.pythonWithWebSockets != nil

    /// The echo conversation: text, binary, a fragmented message, a ping with a random payload, close.
    static let echoSteps = [
        "send:hello", "recv:1", "binary:00ff10", "recv:1", "fragments:frag|ment|ed", "recv:1", "ping",
        "send:after the ping", "recv:1", "close",
    ]
    static let echoOutput = "text hello\nbinary 00ff10\ntext fragmented\npong\ntext after the ping\nclosed 1000 \n"

    /// Records with `record` arguments for a route to `upstream`, until `clients` is done; then replays the tape
    /// with the upstream stopped, `--strict` and `--require-all`, until `clients` is done again.
    static func recordAndReplay<T: Sendable>(
        recordArguments: [String] = [],
        replayArguments: [String] = [],
        _ clients: @escaping @Sendable (Int) throws -> T
    ) async throws -> (recorded: T, replayed: T, replayErrors: String) {
        let server = try await PythonFixture.webSocketServer()
        defer { server.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("websocket.tape")
        let recorded = try await RulesEndToEndTests.record(
            ["--upstream", "127.0.0.1:\(server.port)", "--tape", tape] + recordArguments,
            clients
        )
        server.stop()
        let (replayed, stderr) = try await RulesEndToEndTests.replay(
            ["--tape", tape, "--strict"] + replayArguments,
            clients
        )
        return (recorded, replayed, stderr)
    }

    @Test(.enabled(if: WebSocketEndToEndTests.available, "needs python3 with websockets (.ci/run)"))
    func anEchoConversationReplaysWithANewKeyNewMasksAndItsOwnPing() async throws {
        let (recorded, replayed, _) = try await Self.recordAndReplay { port in
            let url = "ws://127.0.0.1:\(port)/echo"
            return [
                try PythonFixture.webSocketClient(url: url, Self.echoSteps),
                try PythonFixture.webSocketClient(url: url, Self.echoSteps, compression: false),
            ]
        }
        for run in recorded + replayed {
            #expect(run.status == 0 && run.stdout == Self.echoOutput, "\(run)")
        }
    }

    @Test(.enabled(if: WebSocketEndToEndTests.available, "needs python3 with websockets (.ci/run)"))
    func pushedMessagesAndABurstReplayAndTheUpstreamClosesCleanly() async throws {
        let steps = [
            "recv:3", "send:subscribe prices 4", "recv:5", "send:subscribe news 2", "recv:3", "send:bye", "closed",
        ]
        let expected = """
            text welcome 1
            text welcome 2
            text welcome 3
            text prices 1
            text prices 2
            text prices 3
            text prices 4
            binary 00010203
            text news 1
            text news 2
            binary 0001
            closed by upstream 1000 bye

            """
        let (recorded, replayed, _) = try await Self.recordAndReplay { port in
            try PythonFixture.webSocketClient(url: "ws://127.0.0.1:\(port)/feed", steps)
        }
        #expect(recorded.status == 0 && recorded.stdout == expected, "\(recorded)")
        #expect(replayed.status == 0 && replayed.stdout == expected, "\(replayed)")
    }

    @Test(.enabled(if: WebSocketEndToEndTests.available, "needs python3 with websockets (.ci/run)"))
    func plainHTTPOnAWebSocketRouteReplaysByteForByte() async throws {
        let (recorded, replayed, _) = try await Self.recordAndReplay { port in
            let echo = try PythonFixture.webSocketClient(
                url: "ws://127.0.0.1:\(port)/echo",
                ["send:x", "recv:1", "close"]
            )
            // websockets answers a GET that is no upgrade with 426 Upgrade Required.
            let plain = try PythonFixture.run("clients/http_get.py", ["http://127.0.0.1:\(port)/echo"])
            return [echo, plain]
        }
        #expect(recorded[0].stdout == "text x\nclosed 1000 \n", "\(recorded[0])")
        #expect(recorded[1].stdout.hasPrefix("426 Upgrade Required\n"), "\(recorded[1])")
        for (before, after) in zip(recorded, replayed) {
            #expect(after.status == 0 && after.stdout == before.stdout, "\(after)")
        }
    }

    /// Rules apply to the canonical stream: a fresh UUID inside an uncompressed message matches through the uuid
    /// preset, and the upstream's echo of it (an unmasked frame) carries the live client's.
    @Test(.enabled(if: WebSocketEndToEndTests.available, "needs python3 with websockets (.ci/run)"))
    func aFreshValueInsideAMessageMatchesThroughAVolatileRuleAndComesBackAsTheLiveOne() async throws {
        let (recorded, replayed, _) = try await Self.recordAndReplay(recordArguments: ["--preset", "uuid"]) { port in
            let id = UUID().uuidString.lowercased()
            let run = try PythonFixture.webSocketClient(
                url: "ws://127.0.0.1:\(port)/echo",
                ["send:id=\(id)", "recv:1", "close"],
                compression: false
            )
            return (id, run)
        }
        #expect(recorded.1.stdout == "text id=\(recorded.0)\nclosed 1000 \n", "\(recorded.1)")
        #expect(replayed.0 != recorded.0)
        #expect(replayed.1.stdout == "text id=\(replayed.0)\nclosed 1000 \n", "\(replayed.1)")
    }

    /// Byte for byte, the same conversation finds no session: the lens is what makes it replay.
    @Test(.enabled(if: WebSocketEndToEndTests.available, "needs python3 with websockets (.ci/run)"))
    func withoutTheLensTheSameClientFindsNoSession() async throws {
        let server = try await PythonFixture.webSocketServer()
        defer { server.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("raw.tape")
        let steps = ["send:hello", "recv:1", "close"]
        let recorded = try await RulesEndToEndTests.record(["--upstream", "127.0.0.1:\(server.port)", "--tape", tape]) {
            port in try PythonFixture.webSocketClient(url: "ws://127.0.0.1:\(port)/echo", steps)
        }
        server.stop()
        #expect(recorded.status == 0, "\(recorded)")
        let replayer = try TapedeckProcess(["replay", "--tape", tape, "--strict", "--protocol", "raw"])
        let port = try #require(try await replayer.waitForListening()["default"]?.port)
        let replayed = try await offThePool {
            try PythonFixture.webSocketClient(url: "ws://127.0.0.1:\(port)/echo", steps, timeout: .seconds(30))
        }
        replayer.signal(SIGTERM)
        let status = try await replayer.waitForExit(timeout: .seconds(10))
        #expect(replayed.status == 1, "\(replayed)")
        #expect(status == 3, "\(replayer.stderr)")
    }
}
