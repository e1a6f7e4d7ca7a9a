import Foundation
import Testing

@testable import Tapedeck

/// Rules with real clients and servers, through the `tapedeck` executable: what users run.
@Suite(.timeLimit(.minutes(3)))
struct RulesEndToEndTests {
    /// How long the S3 replay waits after recording: a minute, unless TAPEDECK_TEST_AWS_WAIT says otherwise.
    static let awsWait = Int(ProcessInfo.processInfo.environment["TAPEDECK_TEST_AWS_WAIT"] ?? "") ?? 61

    /// Records with `arguments` until `clients` is done, then stops the recorder cleanly.
    static func record<T: Sendable>(
        _ arguments: [String],
        _ clients: @escaping @Sendable (Int) throws -> T
    ) async throws -> T {
        let recorder = try TapedeckProcess(["record"] + arguments)
        let address = try #require(try await recorder.waitForListening()["default"])
        let port = address.port!
        let result = try await offThePool { try clients(port) }
        recorder.signal(SIGTERM)
        let status = try await recorder.waitForExit(timeout: .seconds(10))
        #expect(status == 0, "\(recorder.stderr)")
        return result
    }

    /// Replays with `arguments` and `--require-all` until `clients` is done; the replay must pass.
    static func replay<T: Sendable>(
        _ arguments: [String],
        _ clients: @escaping @Sendable (Int) throws -> T
    ) async throws -> (T, String) {
        let replayer = try TapedeckProcess(["replay", "--require-all"] + arguments)
        let address = try #require(try await replayer.waitForListening()["default"])
        let port = address.port!
        let result = try await offThePool { try clients(port) }
        replayer.signal(SIGTERM)
        let status = try await replayer.waitForExit(timeout: .seconds(10))
        #expect(status == 0, "\(replayer.stderr)")
        return (result, replayer.stderr)
    }

    /// Every byte of a tape file and its side files.
    static func fileBytes(_ path: String) -> Data {
        ["", "-wal", "-shm", "-journal"].reduce(into: Data()) { bytes, suffix in
            bytes += (try? Data(contentsOf: URL(fileURLWithPath: path + suffix))) ?? Data()
        }
    }

    @Test(.enabled(if: RedisServer.isInstalled, "needs redis-server and redis-cli"))
    func aRedisPasswordNeverReachesTheTapeAndTheClientReplays() async throws {
        let password = "Tr0ub4dor-and-3"
        let redis = try await RedisServer(password: password)
        let directory = try TemporaryDirectory()
        let tape = directory.path("redis-auth.tape")
        let commands = [["SET", "door", "open"], ["GET", "door"], ["PING"]]
        let recorded = try await Self.record([
            "--upstream", "127.0.0.1:\(redis.port)", "--tape", tape, "--preset", "redis-auth",
        ]) {
            port in try commands.map { try RedisServer.cli(port: port, password: password, $0) }
        }
        redis.stop()
        #expect(recorded == ["OK\n", "open\n", "PONG\n"])
        let bytes = Self.fileBytes(tape)
        #expect(!bytes.isEmpty)
        #expect(bytes.range(of: Data(password.utf8)) == nil, "the password is in the tape file")
        #expect(bytes.range(of: Data("********".utf8)) != nil)
        // Only the tape's stored rules: the same client, password and all, replays.
        let (replayed, _) = try await Self.replay(["--tape", tape]) { port in
            try commands.map { try RedisServer.cli(port: port, password: password, $0) }
        }
        #expect(replayed == recorded)
        // `sessions` counts the redacted spans, and `show` marks them.
        let sessions = try await TapedeckProcess.run(["sessions", tape])
        #expect(sessions.stdout.contains("(1 redacted)"), "\(sessions.stdout)")
        let show = try await TapedeckProcess.run(["show", tape, "1"])
        #expect(show.stdout.contains("↳ redacted bytes"), "\(show.stdout)")
    }

    @Test(.enabled(if: PythonFixture.python != nil, "needs python3"))
    func aFreshRequestIDEchoedByTheUpstreamComesBackAsTheLiveClients() async throws {
        let server = try await PythonFixture.echoServer()
        let directory = try TemporaryDirectory()
        let tape = directory.path("request-id.tape")
        let recorded = try await Self.record([
            "--upstream", "127.0.0.1:\(server.port)", "--tape", tape, "--preset", "uuid",
        ]) {
            port in try PythonFixture.requestIDClient(port: port, count: 5)
        }
        server.stop()
        #expect(recorded.status == 0 && recorded.stdout.contains("ok 5"), "\(recorded)")
        // The client checks that every reply echoes its own, new id, in the header and in the JSON body.
        let (replayed, _) = try await Self.replay(["--tape", tape]) { port in
            try PythonFixture.requestIDClient(port: port, count: 5)
        }
        #expect(replayed.status == 0 && replayed.stdout.contains("ok 5"), "\(replayed)")
    }

    @Test(.enabled(if: MotoServer.isInstalled, "needs moto[server] and boto3"))
    func boto3AgainstMotoReplaysAMinuteLaterWithTheTapesStoredRules() async throws {
        let moto = try await MotoServer()
        let directory = try TemporaryDirectory()
        let tape = directory.path("s3.tape")
        // aws-sigv4 for what changes on every request; http-auth keeps the credentials out of the tape.
        let recorded = try await Self.record([
            "--upstream", "127.0.0.1:\(moto.port)", "--tape", tape, "--preset", "aws-sigv4", "--preset", "http-auth",
        ]) {
            port in try PythonFixture.s3Client(endpoint: "http://127.0.0.1:\(port)")
        }
        moto.stop()
        #expect(recorded.status == 0, "\(recorded)")
        #expect(recorded.stdout == PythonFixture.s3Summary(), "\(recorded)")
        // A minute on: every signature, date and credential scope the SDK sends is new.
        try await Task.sleep(for: .seconds(Self.awsWait))
        let (replayed, _) = try await Self.replay(["--tape", tape]) { port in
            try PythonFixture.s3Client(endpoint: "http://127.0.0.1:\(port)")
        }
        #expect(replayed.status == 0, "\(replayed)")
        #expect(replayed.stdout == recorded.stdout)
        let scan = try await TapedeckProcess.run(["scan", tape])
        #expect(scan.status == 0, "\(scan.stdout)")
    }

    @Test(.enabled(if: RedisServer.isInstalled, "needs redis-server and redis-cli"))
    func redactingATapeAfterTheFactKeepsItsReplay() async throws {
        let password = "after-the-fact-99"
        let redis = try await RedisServer(password: password)
        let directory = try TemporaryDirectory()
        let tape = directory.path("later.tape")
        let commands = [["SET", "k", "v1"], ["GET", "k"]]
        let recorded = try await Self.record(["--upstream", "127.0.0.1:\(redis.port)", "--tape", tape]) { port in
            try commands.map { try RedisServer.cli(port: port, password: password, $0) }
        }
        redis.stop()
        #expect(Self.fileBytes(tape).range(of: Data(password.utf8)) != nil)
        let redact = try await TapedeckProcess.run(["redact", tape, "--preset", "redis-auth"])
        #expect(redact.status == 0, "\(redact.stderr)")
        #expect(redact.stdout.contains("length \(password.utf8.count)"), "\(redact.stdout)")
        #expect(redact.stderr.contains("redacted 2 spans in 2 sessions"), "\(redact.stderr)")
        #expect(Self.fileBytes(tape).range(of: Data(password.utf8)) == nil, "the password is still in the tape")
        let (replayed, _) = try await Self.replay(["--tape", tape]) { port in
            try commands.map { try RedisServer.cli(port: port, password: password, $0) }
        }
        #expect(replayed == recorded)
    }
}

extension RulesEndToEndTests {
    @Test(.enabled(if: RedisServer.isInstalled, "needs redis-server and redis-cli"))
    func scanFindsTheSecretsOfAnUnredactedTapeAndNothingInARedactedOne() async throws {
        let password = "scan-me-please-42"
        let redis = try await RedisServer(password: password)
        let directory = try TemporaryDirectory()
        let plain = directory.path("plain.tape")
        let redacted = directory.path("redacted.tape")
        for (tape, presets) in [(plain, [String]()), (redacted, ["--preset", "redis-auth"])] {
            _ = try await Self.record(["--upstream", "127.0.0.1:\(redis.port)", "--tape", tape] + presets) { port in
                try RedisServer.cli(port: port, password: password, ["PING"])
            }
        }
        redis.stop()
        let found = try await TapedeckProcess.run(["scan", plain])
        #expect(found.status == 1, "\(found)")
        #expect(found.stdout.contains("redis-auth"), "\(found.stdout)")
        #expect(!found.stdout.contains(password), "scan printed the secret: \(found.stdout)")
        let clean = try await TapedeckProcess.run(["scan", redacted])
        #expect(clean.status == 0, "\(clean)")
        #expect(clean.stdout.isEmpty)
    }
}
