import Foundation
import GRDB
import NIOConcurrencyHelpers
import Testing

@testable import Tapedeck
@testable import TapedeckTesting

/// `--max-age` and `--on-expired` on a tape recorded from redis, two of whose three sessions are made 40 days old.
@Suite(.timeLimit(.minutes(3)), .enabled(if: RedisServer.isInstalled, "needs redis-server and redis-cli"))
struct ExpiryEndToEndTests {
    static let day: Int64 = 86_400 * 1_000_000_000

    /// Records `GET k1`, `GET k2`, `GET k1` from redis, then moves sessions 1 and 2 back 40 days.
    static func agedTape(redis: RedisServer, in directory: TemporaryDirectory) async throws -> String {
        _ = try RedisServer.cli(port: redis.port, ["SET", "k1", "alpha"])
        _ = try RedisServer.cli(port: redis.port, ["SET", "k2", "bravo"])
        let tape = directory.path("redis.tape")
        try await withTapedeck(.record, tape: tape, upstream: "127.0.0.1:\(redis.port)") { address in
            for key in ["k1", "k2", "k1"] { _ = try RedisServer.cli(port: address.port!, ["GET", key]) }
        }
        let database = try DatabaseQueue(path: tape)
        try await database.write { db in
            try db.execute(
                sql: "UPDATE sessions SET started_at = started_at - ? WHERE id IN (1, 2)",
                arguments: [40 * day]
            )
        }
        try database.close()
        return tape
    }

    @Test func warnNamesTheExpiredSessionsAndTheReportListsThem() async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        let directory = try TemporaryDirectory()
        let tape = try await Self.agedTape(redis: redis, in: directory)
        let report = directory.path("report.json")
        let port = try await FreePort.find()
        let result = try await TapedeckProcess.run(
            [
                "run", "--tape", tape, "--listen", "127.0.0.1:\(port)", "--max-age", "30d", "--report", report, "--",
                RedisServer.client!, "-p", "\(port)", "GET", "k1",
            ]
        )
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "alpha\n")
        #expect(
            result.stderr.contains(
                "warning: 2 sessions of tape '\(tape)' are older than 30d (the oldest recorded 40d ago): 1, 2;"
            ),
            "\(result.stderr)"
        )
        let written = try JSONDecoder().decode(ReplayReport.self, from: Data(contentsOf: URL(fileURLWithPath: report)))
        #expect(written.expired.map(\.session) == [1, 2])
        #expect(written.expired.allSatisfy { $0.status == .expired && $0.ageSeconds / 86_400 == 40 })
        #expect(written.failures().isEmpty)
    }

    @Test func failFailsAStrictReplay() async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        let directory = try TemporaryDirectory()
        let tape = try await Self.agedTape(redis: redis, in: directory)
        let port = try await FreePort.find()
        let result = try await TapedeckProcess.run(
            [
                "run", "--tape", tape, "--listen", "127.0.0.1:\(port)", "--max-age", "30d", "--on-expired", "fail",
                "--", RedisServer.client!, "-p", "\(port)", "GET", "k1",
            ]
        )
        #expect(result.status == 3, "\(result)")
        #expect(result.stderr.contains("session 1 of route 'default' was recorded 40d ago, beyond --max-age"))
        #expect(result.stderr.contains("session 2 of route 'default' was recorded 40d ago, beyond --max-age"))
        // Sessions younger than the limit are no failure.
        let fresh = try await TapedeckProcess.run(
            [
                "run", "--tape", tape, "--listen", "127.0.0.1:\(port)", "--max-age", "50d", "--on-expired", "fail",
                "--", RedisServer.client!, "-p", "\(port)", "GET", "k1",
            ]
        )
        #expect(fresh.status == 0, "\(fresh)")
    }

    /// k2 changed upstream: session 2 is re-recorded with the new value, session 1 keeps its events byte for byte
    /// and gets a new time, session 3 (not expired) is left alone, and the replay serves the new value.
    @Test func recordReRecordsExpiredSessionsInPlace() async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        let directory = try TemporaryDirectory()
        let tape = try await Self.agedTape(redis: redis, in: directory)
        let before = try Tape(readingAt: tape)
        let eventsBefore = try (1...3).map { try before.events(inSession: Int64($0)) }
        let sessionsBefore = try before.sessions()
        try before.close()
        _ = try RedisServer.cli(port: redis.port, ["SET", "k2", "bravissimo"])

        let warnings = WarningLog()
        var options = Deck.Options.testDefaults
        options.expiry = TapeExpiry(maxAge: .seconds(30 * 86_400), action: .record)
        options.onWarning = { warnings.append($0) }
        let outcome = try await withTapedeck(
            .replay,
            tape: tape,
            routes: [Route(upstream: .tcp(host: "127.0.0.1", port: redis.port))],
            options: options
        ) { deck in
            let port = try #require(deck.address.port)
            #expect(try RedisServer.cli(port: port, ["GET", "k2"]) == "bravissimo\n")
            return try #require(deck.replayReport)
        }
        #expect(outcome.expired.map(\.status) == [.refreshed, .rerecorded], "\(outcome.expired)")
        #expect(warnings.lines.contains { $0.hasSuffix("re-recorded them from the upstream: 1 changed, 1 unchanged") })

        let after = try Tape(readingAt: tape)
        let sessionsAfter = try after.sessions()
        #expect(try after.events(inSession: 1).map(\.payload) == eventsBefore[0].map(\.payload))
        #expect(try after.events(inSession: 3) == eventsBefore[2])
        let reply = try after.events(inSession: 2).filter { $0.direction == .upstreamToClient && $0.kind == .data }
        #expect(reply.compactMap(\.payload).reduce(Data(), +) == Data("$10\r\nbravissimo\r\n".utf8))
        let now = WallClock.nowNanoseconds()
        #expect(sessionsAfter[0].startedAt > now - Self.day && sessionsAfter[1].startedAt > now - Self.day)
        #expect(sessionsAfter[2].startedAt == sessionsBefore[2].startedAt)
        #expect(sessionsAfter[1].upstreamBytes == 17)
    }

    @Test func configKeysAndBadValues() throws {
        let yaml = "max_age: 30d\non_expired: record\nroutes:\n  - upstream: 127.0.0.1:6379\n"
        let configuration = try ProxyConfiguration.parse(Data(yaml.utf8), path: "c.yaml")
        #expect(configuration.expiry == TapeExpiry(maxAge: .seconds(30 * 86_400), action: .record))
        let plain = try ProxyConfiguration.parse(Data("routes:\n  - upstream: 127.0.0.1:6379\n".utf8), path: "c.yaml")
        #expect(plain.expiry == nil)
        for (text, says) in [
            ("max_age: soon\n", "max_age: invalid duration 'soon'"),
            ("max_age: 0s\n", "max_age must be more than 0"),
            ("on_expired: record\n", "on_expired needs max_age"),
            ("max_age: 1d\non_expired: later\n", "on_expired: 'later' is not an action"),
        ] {
            #expect(throws: TapedeckError.self) {
                try ProxyConfiguration.parse(Data((text + "routes:\n  - upstream: 127.0.0.1:1\n").utf8), path: "c.yaml")
            }
            do {
                _ = try ProxyConfiguration.parse(
                    Data((text + "routes:\n  - upstream: 127.0.0.1:1\n").utf8),
                    path: "c.yaml"
                )
            } catch let error as TapedeckError {
                #expect(error.message.contains(says), "\(error.message)")
            }
        }
    }
}

/// Warnings a deck gave, collected across threads.
final class WarningLog: Sendable {
    private let box = NIOLockedValueBox<[String]>([])
    func append(_ line: String) { box.withLockedValue { $0.append(line) } }
    var lines: [String] { box.withLockedValue { $0 } }
}
