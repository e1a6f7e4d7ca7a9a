import Foundation
import TapedeckTesting
import Testing

@testable import Tapedeck

/// Faults with real clients and upstreams: a recorded conversation replayed as failure tests (mutation replay),
/// toxics on a live proxy, a faulted recording, and the same seed faulting the same connections.
@Suite(.timeLimit(.minutes(3)))
struct FaultEndToEndTests {
    private func temporaryPath(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("faults-\(UUID().uuidString)-\(name)").path
    }

    private func write(_ text: String, to name: String) throws -> String {
        let path = temporaryPath(name)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// curl fetches two files over one keep-alive connection; replayed with a reset 100 bytes into the second
    /// reply, curl gets the first file whole and reports a reset on the second request, exactly there.
    @Test(.enabled(if: NginxServer.isInstalled, "needs nginx and curl (installed by .ci/run)"))
    func curlMeetsAResetAHundredBytesIntoTheSecondReplyOfARecordedNginxConversation() async throws {
        let first = Data("the first file, served whole\n".utf8)
        let second = Data(String(repeating: "0123456789abcdef", count: 64).utf8)
        let nginx = try await NginxServer(files: ["one.txt": first, "two.txt": second])
        defer { nginx.stop() }
        let tape = temporaryPath("nginx.tape")
        try await withTapedeck(.record, tape: tape, upstream: "127.0.0.1:\(nginx.port)") { address in
            let bodies = try NginxServer.curl(port: address.port!, ["/one.txt", "/two.txt"])
            #expect(bodies == first + second)
        }
        nginx.stop()
        let faults = try write(
            "- {type: reset_peer, stream: downstream, session: 1, exchange: 2, offset: 100}\n",
            to: "faults.yaml"
        )
        let replay = try TapedeckProcess(["replay", "--tape", tape, "--fault", faults, "--strict", "--require-all"])
        let port = try await replay.waitForListening()["default"]!.port!
        let one = temporaryPath("one")
        let two = temporaryPath("two")
        let curl = try await offThePool {
            try ChildProcess.run(
                [
                    NginxServer.curl!, "-sS", "--max-time", "20", "-o", one, "-o", two, "-w", "%{size_download} ",
                    "http://127.0.0.1:\(port)/one.txt", "http://127.0.0.1:\(port)/two.txt",
                ]
            )
        }
        // curl's exit status 56: a failure receiving data, here "Connection reset by peer".
        #expect(curl.status == 56, "\(curl.output)")
        #expect(curl.output.contains("reset"), "\(curl.output)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: one)) == first)
        replay.signal(SIGINT)
        // The cut was the fault's doing: no mismatch, no unused session, so even a strict replay passes.
        #expect(try await replay.waitForExit(timeout: .seconds(20)) == 0, "\(replay.stderr)")
        #expect(replay.stderr.contains("1 toxic fired"), "\(replay.stderr)")
        #expect(replay.stderr.contains("toxic fired"))
    }

    /// A recorded redis `GET` replayed with its first two tries reset (`match: GET`, `count: 2`): the third works.
    @Test(.enabled(if: RedisServer.isInstalled, "needs redis-server and redis-cli (installed by .ci/run)"))
    func theFirstTwoGetsOfARecordedRedisSessionFailAndTheThirdWorks() async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        _ = try RedisServer.cli(port: redis.port, ["SET", "greeting", "hello"])
        let tape = temporaryPath("redis.tape")
        try await withTapedeck(.record, tape: tape, upstream: "127.0.0.1:\(redis.port)") { address in
            let value = try RedisServer.cli(port: address.port!, ["GET", "greeting"])
            #expect(value == "hello\n")
        }
        redis.stop()
        var options = Deck.Options.testDefaults
        options.faults = FaultRegistry(seed: 1)
        options.faultPlan = try FaultPlan.parse(
            Data(#"[{"type": "reset_peer", "stream": "downstream", "match": "GET", "count": 2}]"#.utf8),
            json: true
        )
        let deck = try await Deck.start(.replay, tape: tape, routes: [Route()], options: options)
        var outputs: [String] = []
        for _ in 0..<3 {
            let port = deck.address.port!
            outputs.append(
                try await offThePool {
                    let client = RedisServer.client!
                    let result = try ChildProcess.run([client, "-h", "127.0.0.1", "-p", "\(port)", "GET", "greeting"])
                    return "\(result.status) \(result.output)"
                }
            )
        }
        let outcome = try await deck.stop()
        #expect(outputs[0].hasPrefix("1 ") && outputs[0].contains("reset"), "\(outputs)")
        #expect(outputs[1].hasPrefix("1 ") && outputs[1].contains("reset"), "\(outputs)")
        #expect(outputs[2] == "0 hello\n", "\(outputs)")
        let report = try #require(outcome.replay)
        #expect(report.faults.map(\.session) == [1, 2])
        #expect(report.cut.count == 2 && report.replayed.count == 1)
        try report.verify(requireAll: true)
        #expect(options.faults!.faults(named: "default")?.toxics.isEmpty == true, "the count is spent")
    }

    /// A toxic pinned to a recorded session acts only on connections replayed from it.
    @Test(.enabled(if: RedisServer.isInstalled, "needs redis-server and redis-cli (installed by .ci/run)"))
    func aToxicPinnedToARecordedSessionActsOnlyOnConnectionsReplayedFromIt() async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        _ = try RedisServer.cli(port: redis.port, ["MSET", "a", "1", "b", "2"])
        let tape = temporaryPath("two.tape")
        try await withTapedeck(.record, tape: tape, upstream: "127.0.0.1:\(redis.port)") { address in
            _ = try RedisServer.cli(port: address.port!, ["GET", "a"])
            _ = try RedisServer.cli(port: address.port!, ["GET", "b"])
        }
        redis.stop()
        var options = Deck.Options.testDefaults
        options.faults = FaultRegistry()
        options.faultPlan = try FaultPlan.parse(Data("- {type: reset_peer, recorded_session: 2}\n".utf8), json: false)
        let deck = try await Deck.start(.replay, tape: tape, routes: [Route()], options: options)
        let port = deck.address.port!
        let results = try await offThePool {
            ["b", "a"].map { key in
                (try? ChildProcess.run([RedisServer.client!, "-h", "127.0.0.1", "-p", "\(port)", "GET", key]))
                    .map { "\($0.status) \($0.output)" } ?? "failed"
            }
        }
        _ = try await deck.stop()
        #expect(results[0].hasPrefix("1 ") && results[0].contains("reset"), "\(results)")
        #expect(results[1] == "0 1\n", "\(results)")
        #expect(options.faults!.log.fired.map(\.recordedSession) == [2])
    }

    /// A live proxy in front of redis: a latency toxic adds its delay to each reply, and once removed the traffic
    /// is clean again; recorded, the tape names the toxic where it acted.
    @Test(.enabled(if: RedisServer.isInstalled, "needs redis-server (installed by .ci/run)"))
    func aLatencyToxicOnALiveRecordingDelaysRepliesAndIsNamedOnTheTape() async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        let tape = temporaryPath("live.tape")
        var options = Deck.Options.testDefaults
        let registry = FaultRegistry(seed: 3)
        options.faults = registry
        let route = Route(upstream: try Endpoint(parsing: "127.0.0.1:\(redis.port)"))
        let deck = try await Deck.start(.record, tape: tape, routes: [route], options: options)
        var attributes = ToxicAttributes()
        attributes.latency = 50
        try registry.faults(for: route).add(Toxic(kind: .latency, attributes: attributes))
        let port = deck.address.port!
        let slow = try await offThePool { try Self.pingTimes(port: port, count: 8) }
        try registry.faults(for: route).remove("latency_downstream")
        // Once the toxic is gone some ping is fast; a stall of the shared machine may slow several in a row, so
        // up to 40 are tried (each under a second while nothing stalls).
        let fast = try await offThePool {
            var times: [Double] = []
            for _ in 0..<40 where times.last.map({ $0 >= 0.050 }) ?? true {
                times += try Self.pingTimes(port: port, count: 1)
            }
            return times
        }
        _ = try await deck.stop()
        // Only a floor and the toxic's removal: the suite shares two cores, so a ceiling would measure the
        // machine; the Toxiproxy client's test and the benchmark measure the accuracy.
        // Every delayed reply waits at least the toxic's 50 ms.
        #expect(slow.min()! >= 0.050, "\(slow)")
        #expect(fast.min()! < 0.050, "\(fast) against \(slow)")
        let reading = try Tape(readingAt: tape)
        let first = try #require(try reading.sessions().first)
        var kinds: [EventKind] = []
        try reading.forEachEvent(inSession: first.id!) { kinds.append($0.kind) }
        #expect(kinds.contains(.fault))
        #expect(registry.log.fired.count == 1)
    }

    /// A connection opened while its route had no toxic has no fault stage; a toxic added later joins it and acts
    /// from its next reply, and once removed the connection is clean again.
    @Test(.enabled(if: RedisServer.isInstalled, "needs redis-server (installed by .ci/run)"))
    func aToxicAddedToALiveRouteReachesAConnectionAlreadyOpen() async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        var options = Deck.Options.testDefaults
        let registry = FaultRegistry(seed: 5)
        options.faults = registry
        let route = Route(upstream: try Endpoint(parsing: "127.0.0.1:\(redis.port)"))
        let deck = try await Deck.start(.proxy, tape: nil, routes: [route], options: options)
        let connection = try BlockingConnection(to: deck.address)
        func ping() throws -> Double {
            let start = Date()
            try connection.send("PING\r\n")
            guard try connection.receive(count: 7) == "+PONG\r\n" else { throw TestProcessError("no PONG") }
            return Date().timeIntervalSince(start)
        }
        let before = try (0..<5).map { _ in try ping() }
        var attributes = ToxicAttributes()
        attributes.latency = 80
        try registry.faults(for: route).add(Toxic(kind: .latency, attributes: attributes))
        // The toxic reaches the connection's event loop as a task of its own: a moment, at most.
        try await Task.sleep(for: .milliseconds(100))
        let during = try (0..<5).map { _ in try ping() }
        try registry.faults(for: route).remove("latency_downstream")
        try await Task.sleep(for: .milliseconds(100))
        // Once the toxic is gone some ping is fast; a stall of the shared machine may slow several in a row, so up
        // to 40 are tried. A toxic that stayed would slow all of them.
        var after: [Double] = []
        for _ in 0..<40 where after.last.map({ $0 >= 0.080 }) ?? true { after.append(try ping()) }
        _ = try await deck.stop()
        // Every ping under the toxic waits its 80 ms.
        #expect(during.min()! >= 0.080, "\(before) \(during) \(after)")
        #expect(after.min()! < 0.080, "\(before) \(during) \(after)")
        #expect(registry.log.fired.map(\.session) == [1])
    }

    /// The same seed faults the same connections: a toxic on half the connections (`toxicity: 0.5`) picks the
    /// same ones in two runs, and another seed picks others.
    @Test(.enabled(if: RedisServer.isInstalled, "needs redis-server (installed by .ci/run)"))
    func theSameSeedFaultsTheSameConnectionsTwice() async throws {
        let redis = try await RedisServer()
        defer { redis.stop() }
        func faultedConnections(seed: UInt64) async throws -> [Int] {
            var options = Deck.Options.testDefaults
            options.faults = FaultRegistry(seed: seed)
            options.faultPlan = try FaultPlan.parse(
                Data("- {type: reset_peer, toxicity: 0.5}\n".utf8),
                json: false
            )
            let route = Route(upstream: try Endpoint(parsing: "127.0.0.1:\(redis.port)"))
            let deck = try await Deck.start(.proxy, tape: nil, routes: [route], options: options)
            let port = deck.address.port!
            var failed: [Int] = []
            for connection in 1...16 {
                let answered = try await offThePool { (try? Self.pingTimes(port: port, count: 1)) != nil }
                if !answered { failed.append(connection) }
            }
            _ = try await deck.stop()
            #expect(options.faults!.log.fired.map(\.session) == failed)
            return failed
        }
        let first = try await faultedConnections(seed: 42)
        let second = try await faultedConnections(seed: 42)
        let other = try await faultedConnections(seed: 43)
        #expect(first == second)
        #expect(first != other)
        #expect((2...14).contains(first.count), "\(first)")
    }

    /// Round-trip times of `count` PINGs on one connection, in seconds; throws if the connection fails.
    static func pingTimes(port: Int, count: Int) throws -> [Double] {
        let connection = try BlockingConnection(to: .tcp(host: "127.0.0.1", port: port))
        var times: [Double] = []
        for _ in 0..<count {
            let start = Date()
            try connection.send("PING\r\n")
            let reply = try connection.receive(count: 7)
            guard reply == "+PONG\r\n" else { throw TestProcessError("no PONG: \(reply)") }
            times.append(Date().timeIntervalSince(start))
        }
        return times
    }
}
