import Foundation
import GRDB
import Testing

@testable import Tapedeck
@testable import TapedeckTesting

/// `tapedeck drift` against real upstreams started here: a tape recorded from redis and from nginx, then the
/// upstream's data changed, and drift must name exactly the sessions that changed, the exchange and the byte.
@Suite(.timeLimit(.minutes(3)))
struct DriftEndToEndTests {
    /// Sessions 1–3 read one key each with redis-cli; session 4 is three exchanges over one connection. Then `k3`
    /// changes (same length, so the first differing byte is the value's first), and so do sessions 3 and 4 only.
    @Test(.enabled(if: RedisServer.isInstalled, "needs redis-server and redis-cli (installed by .ci/run)"))
    func aChangedRedisKeyDriftsExactlyTheSessionsThatReadIt() async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        for (key, value) in [("k1", "alpha"), ("k2", "bravo"), ("k3", "gamma")] {
            _ = try RedisServer.cli(port: redis.port, ["SET", key, value])
        }
        let directory = try TemporaryDirectory()
        let tape = directory.path("redis.tape")
        try await withTapedeck(.record, tape: tape, upstream: "127.0.0.1:\(redis.port)") { address in
            for key in ["k1", "k2", "k3"] {
                #expect(
                    try RedisServer.cli(port: address.port!, ["GET", key]).hasPrefix(
                        ["k1": "alpha", "k2": "bravo", "k3": "gamma"][key]!
                    )
                )
            }
            let connection = try BlockingConnection(to: address)
            try connection.send("PING\r\n")
            #expect(try connection.receive(count: 7) == "+PONG\r\n")
            try connection.send("GET k1\r\n")
            #expect(try connection.receive(count: 11) == "$5\r\nalpha\r\n")
            try connection.send("GET k3\r\n")
            #expect(try connection.receive(count: 11) == "$5\r\ngamma\r\n")
        }
        let upstream = "127.0.0.1:\(redis.port)"
        let same = try await TapedeckProcess.run(["drift", tape, "--upstream", upstream])
        #expect(same.status == 0, "\(same)")
        #expect(same.stdout == "4 unchanged, 0 changed, 0 failed\n")

        _ = try RedisServer.cli(port: redis.port, ["SET", "k3", "GAMMA"])
        let drift = try await TapedeckProcess.run(["drift", tape, "--upstream", upstream, "--json"])
        #expect(drift.status == 4, "\(drift)")
        let results = try JSONDecoder().decode([DriftResult].self, from: Data(drift.stdout.utf8))
        #expect(results.map(\.session) == [1, 2, 3, 4])
        #expect(results.map(\.status) == [.unchanged, .unchanged, .changed, .changed])
        #expect(results[2].exchange == 1 && results[2].offset == 4 && results[2].direction == "upstream_to_client")
        #expect(results[2].recorded == "$5\\r\\ngamma\\r\\n" && results[2].live == "$5\\r\\nGAMMA\\r\\n")
        #expect(results[3].exchange == 3 && results[3].offset == 4)
        #expect(results[3].volatile == false && results[3].hint == nil)

        // A config naming its one route otherwise than the tape does serves for the tape's route, as for replay.
        let config = directory.path("drift.yaml")
        try "routes:\n  - name: cache\n    upstream: \(upstream)\n".write(
            toFile: config,
            atomically: true,
            encoding: .utf8
        )
        let configured = try await TapedeckProcess.run(["drift", tape, "--config", config, "--json"])
        #expect(configured.stdout == drift.stdout, "\(configured)")

        // The same answer with sessions two at a time, and in words.
        let parallel = try await TapedeckProcess.run(["drift", tape, "--upstream", upstream, "--parallel", "2"])
        #expect(parallel.status == 4)
        #expect(parallel.stdout.contains("changed: session 3 (route 'default'): exchange 1, upstream byte 4\n"))
        #expect(parallel.stdout.contains("changed: session 4 (route 'default'): exchange 3, upstream byte 4\n"))
        #expect(parallel.stdout.hasSuffix("2 unchanged, 2 changed, 0 failed\n"), "\(parallel.stdout)")

        // --record writes the live conversations; `diff` against the old tape shows the same two changes.
        let fresh = directory.path("fresh.tape")
        let recorded = try await TapedeckProcess.run(["drift", tape, "--upstream", upstream, "--record", fresh])
        #expect(recorded.status == 4)
        let diff = try TapeDiff.compare(try Tape(readingAt: tape), try Tape(readingAt: fresh))
        #expect(diff.unchanged == [.init(a: 1, b: 1), .init(a: 2, b: 2)], "\(diff)")
        #expect(diff.changed.map(\.a) == [3, 4])
        #expect(diff.changed.map(\.exchange) == [1, 3])
        #expect(try FileManager.default.attributesOfItem(atPath: fresh)[.posixPermissions] as? Int == 0o600)

        // An upstream that is gone fails every session, each with its reason.
        redis.stop()
        let gone = try await TapedeckProcess.run(["drift", tape, "--upstream", upstream, "--json", "--timeout", "2s"])
        #expect(gone.status == 4)
        let failed = try JSONDecoder().decode([DriftResult].self, from: Data(gone.stdout.utf8))
        #expect(failed.map(\.status) == [.failed, .failed, .failed, .failed])
        #expect(failed.allSatisfy { $0.reason?.hasPrefix("cannot connect to \(upstream)") == true }, "\(failed)")
    }

    /// nginx answers with a Date header that changes every second: recorded with the timestamps preset, nothing
    /// drifts; a changed file drifts its session at the Content-Length value, and the other stays unchanged.
    @Test(.enabled(if: NginxServer.isInstalled, "needs nginx and curl (installed by .ci/run)"))
    func nginxDriftsOnAChangedFileAndNotOnItsDateHeader() async throws {
        let nginx = try await NginxServer(files: ["a.txt": Data("alpha\n".utf8), "b.txt": Data("bravo\n".utf8)])
        defer { nginx.stop() }
        let directory = try TemporaryDirectory()
        let upstream = "127.0.0.1:\(nginx.port)"
        func record(_ name: String, rules: [Rule]) async throws -> String {
            let tape = directory.path(name)
            try await withTapedeck(.record, tape: tape, upstream: upstream, rules: rules) { address throws in
                _ = try NginxServer.curl(port: address.port!, ["/a.txt"])
                _ = try NginxServer.curl(port: address.port!, ["/b.txt"])
                // HTTP/1.0: the upstream closes after its answer, and must again.
                _ = try NginxServer.curl(base: "http://127.0.0.1:\(address.port!)", ["/a.txt"], options: ["--http1.0"])
            }
            return tape
        }
        let withRule = try await record("rule.tape", rules: RulePreset.timestamps.rules)
        let bare = try await record("bare.tape", rules: [])
        try await Task.sleep(for: .milliseconds(1100))  // a new Date header

        let steady = try await TapedeckProcess.run(["drift", withRule, "--json"])
        #expect(steady.status == 0, "\(steady)")
        let unchanged = try JSONDecoder().decode([DriftResult].self, from: Data(steady.stdout.utf8))
        #expect(unchanged.map(\.status) == [.unchanged, .unchanged, .unchanged], "\(unchanged)")

        // Without the rule the Date header drifts, and drift says it looks volatile.
        let dated = try await TapedeckProcess.run(["drift", bare, "--json"])
        #expect(dated.status == 4)
        let dateResults = try JSONDecoder().decode([DriftResult].self, from: Data(dated.stdout.utf8))
        #expect(dateResults.map(\.status) == [.changed, .changed, .changed])
        let dateOffset = try Self.offset(of: "Date: ", inAnswerOf: 1, in: bare)
        #expect(dateResults[0].offset.map { $0 > dateOffset && $0 < dateOffset + 40 } == true, "\(dateResults)")
        #expect(dateResults[0].volatile == true, "\(dateResults)")
        #expect(dateResults[0].hint?.contains("--volatile") == true)

        try Data("bravissimo\n".utf8).write(to: URL(fileURLWithPath: nginx.root + "/b.txt"))
        let changed = try await TapedeckProcess.run(["drift", withRule, "--json"])
        #expect(changed.status == 4, "\(changed)")
        let results = try JSONDecoder().decode([DriftResult].self, from: Data(changed.stdout.utf8))
        #expect(results.map(\.status) == [.unchanged, .changed, .unchanged])
        #expect(results[1].exchange == 1 && results[1].direction == "upstream_to_client")
        #expect(results[1].offset == (try Self.offset(of: "Content-Length: ", inAnswerOf: 2, in: withRule)) + 16)
        #expect(results[1].volatile == false)
    }

    /// psql against PostgreSQL (trust): the BackendKeyData each connection gets anew is no drift, a changed row is.
    @Test(.enabled(if: PostgresServer.isInstalled, "needs PostgreSQL and psql (installed by .ci/run)"))
    func aChangedPostgresRowDriftsAndTheConnectionsKeyDoesNot() async throws {
        let postgres = try await PostgresServer()
        defer { postgres.stop() }
        _ = try PostgresServer.psql(port: postgres.port, "CREATE TABLE t (k text, v text)")
        _ = try PostgresServer.psql(port: postgres.port, "INSERT INTO t VALUES ('a', 'alpha'), ('b', 'bravo')")
        let directory = try TemporaryDirectory()
        let tape = directory.path("pg.tape")
        try await withTapedeck(.record, tape: tape, upstream: "127.0.0.1:\(postgres.port)") { address throws in
            #expect(try PostgresServer.psql(port: address.port!, "SELECT v FROM t WHERE k = 'a'") == "alpha\n")
            #expect(try PostgresServer.psql(port: address.port!, "SELECT v FROM t WHERE k = 'b'") == "bravo\n")
        }
        let same = try await TapedeckProcess.run(["drift", tape, "--upstream", "127.0.0.1:\(postgres.port)"])
        #expect(same.status == 0, "\(same)")
        _ = try PostgresServer.psql(port: postgres.port, "UPDATE t SET v = 'BRAVO' WHERE k = 'b'")
        let drift = try await TapedeckProcess.run(["drift", tape, "--upstream", "127.0.0.1:\(postgres.port)", "--json"])
        #expect(drift.status == 4, "\(drift)")
        let results = try JSONDecoder().decode([DriftResult].self, from: Data(drift.stdout.utf8))
        #expect(results.map(\.status) == [.unchanged, .changed])
        #expect(results[1].live?.contains("BRAVO") == true && results[1].recorded?.contains("bravo") == true)
    }

    /// dig's queries over UDP, recorded from dnsmasq: each datagram goes out again as one, and the answers match.
    /// A recorded answer then edited (192.0.2.10 → .11) drifts at exactly that byte.
    @Test(.enabled(if: DnsmasqServer.isInstalled, "needs dnsmasq and dig (installed by .ci/run)"))
    func dnsOverUDPIsReissuedDatagramByDatagram() async throws {
        let dnsmasq = try await DnsmasqServer()
        defer { dnsmasq.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("dns.tape")
        let answers = try await dnsmasq.recordDig(["www.tapedeck.test/A", "tapedeck.test/MX"], to: tape)
        #expect(answers.contains("192.0.2.10"), "\(answers)")

        let upstream = "127.0.0.1:\(dnsmasq.port)"
        let same = try await TapedeckProcess.run(["drift", tape, "--upstream", upstream, "--json"])
        #expect(same.status == 0, "\(same)")
        let unchanged = try JSONDecoder().decode([DriftResult].self, from: Data(same.stdout.utf8))
        #expect(!unchanged.isEmpty && unchanged.allSatisfy { $0.status == .unchanged }, "\(unchanged)")

        // The A answer's address, as the tape holds it, one higher: as if the zone had changed.
        let address = Data([192, 0, 2, 10])
        let database = try DatabaseQueue(path: tape)
        let (session, seq, offset) = try await database.read { db -> (Int64, Int64, Int) in
            for row in try Row.fetchAll(db, sql: "SELECT session_id, seq, payload FROM events WHERE direction = 1") {
                let payload: Data = row["payload"] ?? Data()
                if let range = payload.range(of: address) {
                    return (row["session_id"], row["seq"], range.upperBound - 1 - payload.startIndex)
                }
            }
            throw TestProcessError("no recorded answer holds 192.0.2.10")
        }
        try await database.write { db in
            let payload = try Data.fetchOne(
                db,
                sql: "SELECT payload FROM events WHERE session_id = ? AND seq = ?",
                arguments: [session, seq]
            )
            var edited = try #require(payload)
            edited[edited.startIndex + offset] = 11
            try db.execute(
                sql: "UPDATE events SET payload = ? WHERE session_id = ? AND seq = ?",
                arguments: [edited, session, seq]
            )
        }
        try database.close()
        let drift = try await TapedeckProcess.run(["drift", tape, "--upstream", upstream, "--json"])
        #expect(drift.status == 4, "\(drift)")
        let results = try JSONDecoder().decode([DriftResult].self, from: Data(drift.stdout.utf8))
        let changed = try #require(results.first { $0.status == .changed }, "\(results)")
        #expect(changed.session == session && changed.direction == "upstream_to_client")
        // Where the edited byte is in the exchange's answer: the answers of the session before it, then its offset.
        let events = try Tape(readingAt: tape).events(inSession: session)
        var exchange = 0
        var answerStart = 0
        var before = Direction.clientToUpstream
        for event in events where event.kind == .data {
            if event.direction == .clientToUpstream, before == .upstreamToClient {
                (exchange, answerStart) = (exchange + 1, 0)
            }
            if event.seq == seq { break }
            if event.direction == .upstreamToClient { answerStart += event.payload?.count ?? 0 }
            before = event.direction
        }
        #expect(changed.exchange == exchange + 1 && changed.offset == answerStart + offset, "\(changed)")
    }

    @Test func badInputGetsOneLineAndTheRightStatus() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("t.tape")
        try ConversationTape.make(at: tape, [[.client("PING\r\n"), .upstream("+PONG\r\n")]])
        for (arguments, status, says) in [
            (["drift", directory.path("none.tape")], Int32(1), "cannot"),
            (["drift", tape, "--upstream", "nowhere"], 2, "--upstream"),
            (["drift", tape, "--upstream", "127.0.0.1:1", "--config", "c.yaml"], 2, "--config cannot be combined"),
            (["drift", tape, "--parallel", "0"], 2, "--parallel"),
            (["drift", tape, "--timeout", "soon"], 2, "--timeout"),
        ] {
            let result = try await TapedeckProcess.run(arguments)
            #expect(result.status == status, "\(arguments): \(result)")
            #expect(result.stderr.split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(says), "\(arguments): \(result.stderr)")
        }
    }

    /// Where `text` starts in the upstream's bytes of session `session`'s first exchange.
    static func offset(of text: String, inAnswerOf session: Int64, in path: String) throws -> Int {
        let events = try Tape(readingAt: path).events(inSession: session)
        let answer = events.filter { $0.direction == .upstreamToClient && $0.kind == .data }
            .reduce(into: Data()) { $0.append($1.payload ?? Data()) }
        let range = try #require(answer.range(of: Data(text.utf8)))
        return range.lowerBound - answer.startIndex
    }
}
