import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TapedeckTesting
import Testing

@testable import Tapedeck

/// psql logging in to a real PostgreSQL with SCRAM-SHA-256, recorded, then answered from the tape with the
/// server gone.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct PostgresScramTests {
    static let password = "scram: correct horse"
    static let query = "SELECT 'scram ' || current_user"
    /// libpq's default (`prefer`), which opens with an SSLRequest, and plaintext from the start.
    static let sslmodes: [String?] = [nil, "disable"]

    /// libpq's own SCRAM client against the responder, fed the upstream's bytes as recorded: the login succeeds
    /// with the password, and fails without it or with another.
    @Test(.enabled(if: PostgresServer.isInstalled, "needs PostgreSQL 15 and psql (installed by .ci/run)"))
    func psqlLogsInToRecordedBytesThroughTheResponder() async throws {
        let postgres = try await PostgresServer(scramPassword: Self.password)
        defer { postgres.stop() }
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("scram.tape")
        let recorded = try await withTapedeck(.record, tape: tapePath, upstream: "127.0.0.1:\(postgres.port)") {
            address throws in
            try Self.sslmodes.map {
                try PostgresServer.runPsql(port: address.port!, Self.query, password: Self.password, sslmode: $0)
            }
        }
        postgres.stop()
        #expect(recorded.map(\.status) == [0, 0], "\(recorded)")
        #expect(recorded.map(\.output) == ["scram postgres\n", "scram postgres\n"])

        let tape = try Tape(readingAt: tapePath)
        let sessions = try tape.sessions().map { try tape.events(inSession: try #require($0.id)) }
        try tape.close()
        #expect(sessions.count == 2)
        for (password, succeeds) in [(Self.password, true), ("another password", false)] {
            let server = try await RecordedPostgres.start(sessions: sessions, password: Self.password)
            for sslmode in Self.sslmodes {
                let result = try PostgresServer.runPsql(
                    port: server.port,
                    Self.query,
                    password: password,
                    sslmode: sslmode
                )
                if succeeds {
                    #expect(
                        result.status == 0 && result.output == "scram postgres\n",
                        "\(sslmode ?? "prefer"): \(result)"
                    )
                } else {
                    #expect(result.status != 0, "\(sslmode ?? "prefer"): \(result)")
                }
            }
            try await server.channel.close()
        }
        let unanswered = try await RecordedPostgres.start(sessions: sessions, password: nil)
        #expect(try PostgresServer.runPsql(port: unanswered.port, Self.query, password: Self.password).status != 0)
        try await unanswered.channel.close()
    }

    /// The whole way through the executable: `tapedeck record --preset postgres-password`, then `tapedeck replay
    /// --secret postgres-password=…` with PostgreSQL stopped, for libpq's default sslmode and for plaintext; and
    /// without the secret, a replay whose report says how to supply it.
    @Test(.enabled(if: PostgresServer.isInstalled, "needs PostgreSQL 15 and psql (installed by .ci/run)"))
    func psqlReplaysAScramLoginGivenThePassword() async throws {
        let postgres = try await PostgresServer(scramPassword: Self.password)
        defer { postgres.stop() }
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("scram.tape")
        let recorder = try TapedeckProcess([
            "record", "--upstream", "127.0.0.1:\(postgres.port)", "--tape", tapePath, "--preset", "postgres-password",
        ])
        let recordAddress = try #require(try await recorder.waitForListening()["default"])
        let recordPort = recordAddress.port!
        let recorded = try await offThePool {
            try Self.sslmodes.map {
                try PostgresServer.runPsql(port: recordPort, Self.query, password: Self.password, sslmode: $0)
            }
        }
        recorder.signal(SIGTERM)
        #expect(try await recorder.waitForExit(timeout: .seconds(10)) == 0, "\(recorder.stderr)")
        postgres.stop()
        #expect(recorded.map(\.output) == ["scram postgres\n", "scram postgres\n"], "\(recorded)")

        let replayer = try TapedeckProcess([
            "replay", "--tape", tapePath, "--preset", "postgres-password", "--secret",
            "postgres-password=\(Self.password)", "--require-all",
        ])
        let address = try #require(try await replayer.waitForListening()["default"])
        // In reverse: each connection finds its own session by its bytes, whatever the order.
        let replayPort = address.port!
        let replayed = try await offThePool {
            try Self.sslmodes.reversed().map {
                try PostgresServer.runPsql(port: replayPort, Self.query, password: Self.password, sslmode: $0)
            }
        }
        replayer.signal(SIGTERM)
        let replayStatus = try await replayer.waitForExit(timeout: .seconds(10))
        #expect(replayStatus == 0, "\(replayer.stderr)")
        #expect(Array(replayed.reversed()).map(\.output) == recorded.map(\.output), "\(replayed)")

        let reportPath = directory.path("report.json")
        let secretless = try TapedeckProcess(
            ["replay", "--tape", tapePath, "--preset", "postgres-password", "--report", reportPath],
            environment: ["TAPEDECK_SECRET_POSTGRES_PASSWORD": nil]
        )
        let secretlessAddress = try #require(try await secretless.waitForListening()["default"])
        let refused = try await offThePool {
            try PostgresServer.runPsql(port: secretlessAddress.port!, Self.query, password: Self.password)
        }
        secretless.signal(SIGTERM)
        _ = try await secretless.waitForExit(timeout: .seconds(10))
        #expect(refused.status != 0, "\(refused)")
        let hint = "--secret postgres-password=PASSWORD or the environment variable TAPEDECK_SECRET_POSTGRES_PASSWORD"
        #expect(secretless.stderr.contains(hint), "\(secretless.stderr)")
        #expect(try String(contentsOfFile: reportPath, encoding: .utf8).contains("SCRAM-SHA-256"))
    }
}

extension PostgresScramTests {
    /// Recorded with no rule at all, as a user who did not know about SCRAM would, and replayed with only the
    /// password in the environment: the SCRAM exchange's volatile parts are known to replay whenever the password is.
    @Test(.enabled(if: PostgresServer.isInstalled, "needs PostgreSQL 15 and psql (installed by .ci/run)"))
    func aLoginRecordedWithoutThePresetReplaysWithThePasswordInTheEnvironment() async throws {
        let postgres = try await PostgresServer(scramPassword: Self.password)
        defer { postgres.stop() }
        let directory = try TemporaryDirectory()
        let tapePath = directory.path("bare.tape")
        let recorder = try TapedeckProcess(["record", "--upstream", "127.0.0.1:\(postgres.port)", "--tape", tapePath])
        let recordAddress = try #require(try await recorder.waitForListening()["default"])
        let recorded = try await offThePool {
            try PostgresServer.runPsql(port: recordAddress.port!, Self.query, password: Self.password)
        }
        recorder.signal(SIGTERM)
        #expect(try await recorder.waitForExit(timeout: .seconds(10)) == 0, "\(recorder.stderr)")
        postgres.stop()
        let replayer = try TapedeckProcess(
            ["replay", "--tape", tapePath, "--require-all"],
            environment: ["TAPEDECK_SECRET_POSTGRES_PASSWORD": Self.password]
        )
        let address = try #require(try await replayer.waitForListening()["default"])
        let replayed = try await offThePool {
            try PostgresServer.runPsql(port: address.port!, Self.query, password: Self.password)
        }
        replayer.signal(SIGTERM)
        let status = try await replayer.waitForExit(timeout: .seconds(10))
        #expect(status == 0, "\(replayer.stderr)")
        #expect(replayed.output == recorded.output, "\(replayed)")
    }
}

/// A stand-in for the upstream that plays recorded PostgreSQL sessions, one per connection in turn, through a
/// ``PostgresScramResponder``: each recorded upstream send goes out once the client has sent as many bytes as
/// the recorded client had before it. libpq's SCRAM messages have the same length on every login.
struct RecordedPostgres {
    let channel: any Channel
    var port: Int { channel.localAddress!.port! }

    static func start(sessions: [[EventRecord]], password: String?) async throws -> RecordedPostgres {
        let nextSession = NIOLockedValueBox(0)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let index = nextSession.withLockedValue { index in
                    defer { index += 1 }
                    return index
                }
                return channel.eventLoop.makeCompletedFuture {
                    let events = index < sessions.count ? sessions[index] : []
                    try channel.pipeline.syncOperations.addHandler(Handler(events: events, password: password))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return RecordedPostgres(channel: channel)
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let events: [EventRecord]
        private var responder: PostgresScramResponder
        private var next = 0
        private var clientBytes = (received: 0, played: 0)

        init(events: [EventRecord], password: String?) {
            self.events = events.filter { $0.kind == .data }
            responder = PostgresScramResponder(password: password)
        }

        func channelActive(context: ChannelHandlerContext) {
            play(context: context)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            clientBytes.received += buffer.readableBytes
            responder.observeClient(Data(buffer.readableBytesView))
            play(context: context)
        }

        private func play(context: ChannelHandlerContext) {
            while next < events.count, let payload = events[next].payload {
                if events[next].direction == .clientToUpstream {
                    guard clientBytes.received >= clientBytes.played + payload.count else { return }
                    clientBytes.played += payload.count
                } else {
                    let bytes = responder.rewriteUpstream(payload)
                    if !bytes.isEmpty { context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: bytes)), promise: nil) }
                }
                next += 1
            }
        }
    }
}
