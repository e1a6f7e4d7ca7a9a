import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A real `redis-server` on a free loopback port, started for one test and stopped by its PID.
final class RedisServer: Sendable {
    static let executable = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static let client = ["/usr/bin/redis-cli", "/usr/local/bin/redis-cli"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    static var isInstalled: Bool { executable != nil && client != nil }

    let port: Int
    private let process: ChildProcess

    init() async throws {
        guard let executable = Self.executable else { throw TestProcessError("redis-server is not installed") }
        (port, process) = try await startListening { port in
            try ChildProcess([
                executable, "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no",
            ])
        }
    }

    /// Stops the server by its PID.
    func stop() {
        process.stop(SIGTERM)
    }

    deinit { stop() }

    /// Runs `redis-cli` against `port` with `arguments`, returning its stdout.
    static func cli(port: Int, _ arguments: [String]) throws -> String {
        guard let client else { throw TestProcessError("redis-cli is not installed") }
        return try ChildProcess.run([client, "-h", "127.0.0.1", "-p", "\(port)"] + arguments).output
    }
}

struct TestProcessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A port that was free a moment ago: bound to port 0 and released.
///
/// The kernel readily hands a just-released port to the next bind to port 0, so two tests asking at once could
/// get the same one; ports already handed out in this run are never handed out again.
enum FreePort {
    private static let handedOut = NIOLockedValueBox(Set<Int>())

    static func find() async throws -> Int {
        for _ in 0..<50 {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(host: "127.0.0.1", port: 0).get()
            let port = channel.localAddress!.port!
            try await channel.close()
            if handedOut.withLockedValue({ $0.insert(port).inserted }) { return port }
        }
        throw TestProcessError("no fresh free port found")
    }
}
