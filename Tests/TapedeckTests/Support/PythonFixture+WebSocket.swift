import Foundation

/// The WebSocket server and client under `fixtures/`, both Python's `websockets`.
///
/// ```swift
/// let server = try await PythonFixture.webSocketServer()
/// defer { server.stop() }
/// let url = "ws://127.0.0.1:\(server.port)/echo"
/// let run = try PythonFixture.webSocketClient(url: url, ["send:hi", "recv:1", "close"])
/// #expect(run.stdout == "text hi\nclosed 1000 \n")
/// ```
extension PythonFixture {
    /// A `python3` that can import `websockets` (`.ci/run` installs it with pip).
    static let pythonWithWebSockets = interpreter(importing: ["websockets.asyncio.client", "websockets.asyncio.server"])

    /// `clients/websocket_client.py`: connects to `url` (a fresh key, fresh masks; permessage-deflate offered unless
    /// `compression` is false) and runs `steps` (`send:TEXT`, `binary:HEX`, `fragments:A|B`, `ping`, `recv:N`,
    /// `close`, `closed`), printing a line for each message received, pong and close.
    static func webSocketClient(
        url: String,
        _ steps: [String],
        compression: Bool = true,
        timeout: Duration = .seconds(60)
    ) throws -> Run {
        let options = compression ? [] : ["--no-compression"]
        return try run(
            "clients/websocket_client.py",
            options + [url] + steps,
            python: pythonWithWebSockets,
            timeout: timeout
        )
    }

    /// `servers/websocket_server.py` on a free loopback port: `/echo` sends every message back, `/feed` pushes
    /// three messages and a ping on connect, answers `subscribe TOPIC COUNT` with a burst and `bye` by closing;
    /// stopped by its PID.
    static func webSocketServer(timeout: Duration = .seconds(20)) async throws -> ScriptServer {
        try await ScriptServer(
            python: PythonFixture.pythonWithWebSockets,
            missing: "no python3 with websockets",
            script: "servers/websocket_server.py",
            timeout: timeout
        )
    }
}
