import Foundation
import Testing

@testable import Tapedeck

/// Toxics on UDP routes with real sockets: a Python echo server through a proxying and a recording deck, and dig
/// against a DNS tape replayed with its answers lost.
@Suite(.timeLimit(.minutes(3)))
struct UDPFaultEndToEndTests {
    static let python = PythonFixture.python != nil

    /// A proxying deck in front of `echo` whose route starts with `toxics`, and the registry they are in.
    static func proxy(
        to echo: PythonFixture.ScriptServer,
        seed: UInt64 = 7,
        _ toxics: Toxic...
    ) async throws -> (deck: Deck, faults: RouteFaults, registry: FaultRegistry, port: Int) {
        let registry = FaultRegistry(seed: seed)
        let route = Route(upstream: .udp(host: "127.0.0.1", port: echo.port))
        let faults = registry.faults(for: route)
        for toxic in toxics { try faults.add(toxic) }
        var options = Deck.Options()
        options.faults = registry
        let deck = try await Deck.start(.proxy, tape: nil, routes: [route], options: options)
        return (deck, faults, registry, try #require(deck.address.port))
    }

    /// Sends `text` and waits up to `wait` for its echo, skipping any late echo of an earlier datagram; true when
    /// it came.
    static func ask(_ client: UDPTestClient, _ text: String, port: Int, wait: Duration) throws -> Bool {
        try client.send(Array(text.utf8), to: port)
        let deadline = ContinuousClock.now.advanced(by: wait)
        for _ in 0..<20 {
            let left = deadline - ContinuousClock.now
            guard left > .zero, let reply = client.receive(timeout: left) else { return false }
            if reply == Array(text.utf8) { return true }
        }
        return false
    }

    static func chance(_ kind: ToxicKind, _ probability: Double, stream: ToxicStream) -> Toxic {
        var attributes = ToxicAttributes()
        attributes.probability = probability
        return Toxic(kind: kind, stream: stream, attributes: attributes)
    }
}

// MARK: - Proxy

extension UDPFaultEndToEndTests {
    /// With every reply lost nothing comes back, and each loss is listed; once the toxic is removed, echoes do.
    @Test(.enabled(if: UDPFaultEndToEndTests.python, "needs python3"))
    func lossOfEveryReplyLeavesTheClientWithoutAnswersUntilItIsRemoved() async throws {
        let echo = try await PythonFixture.udpEchoServer()
        defer { echo.stop() }
        let (deck, faults, registry, port) = try await Self.proxy(to: echo, Self.chance(.loss, 1, stream: .downstream))
        let client = try UDPTestClient()
        let lost = try await offThePool {
            try (0..<3).map { try Self.ask(client, "lost \($0)", port: port, wait: .milliseconds(400)) }
        }
        #expect(lost == [false, false, false])
        try faults.remove("loss_downstream")
        let healed = try await offThePool { try Self.ask(client, "back", port: port, wait: .seconds(10)) }
        #expect(healed)
        _ = try await deck.stop()
        #expect(registry.log.fired.map(\.toxic) == ["loss_downstream", "loss_downstream", "loss_downstream"])
        // A reply is counted in the exchange of the client's latest datagram when it arrives, which a slow echo may
        // reach late: each is one of the three.
        #expect(registry.log.fired.allSatisfy { (1...3).contains($0.exchange) })
        #expect(registry.log.fired.allSatisfy { $0.session == 1 && $0.route == "default" })
    }

    /// Half the client's datagrams lost, with the same seed twice: the same ones are lost in both runs.
    @Test(.enabled(if: UDPFaultEndToEndTests.python, "needs python3"))
    func halfLostWithTheSameSeedLosesTheSameDatagramsTwice() async throws {
        let echo = try await PythonFixture.udpEchoServer()
        defer { echo.stop() }
        @Sendable func run() async throws -> (answered: [Bool], fired: [Int]) {
            let (deck, _, registry, port) = try await Self.proxy(
                to: echo,
                seed: 42,
                Self.chance(.loss, 0.5, stream: .upstream)
            )
            let client = try UDPTestClient()
            // All sent, then every echo collected for a while: a slow echo is late, never lost.
            let answered = try await offThePool { () throws -> [Bool] in
                for index in 1...16 { try client.send(Array("datagram \(index)".utf8), to: port) }
                var received = Set<String>()
                let deadline = ContinuousClock.now.advanced(by: .seconds(3))
                for _ in 0..<64 {
                    let left = deadline - ContinuousClock.now
                    guard left > .zero, let reply = client.receive(timeout: left) else { break }
                    received.insert(String(decoding: reply, as: UTF8.self))
                }
                return (1...16).map { received.contains("datagram \($0)") }
            }
            _ = try await deck.stop()
            return (answered, registry.log.fired.map(\.exchange))
        }
        let first = try await run()
        let second = try await run()
        #expect(first.fired == second.fired)
        #expect(first.answered == second.answered)
        #expect(first.answered.contains(true) && first.answered.contains(false), "\(first)")
        // What the client missed is what the toxic dropped.
        #expect(first.answered.indices.filter { !first.answered[$0] }.map { $0 + 1 } == first.fired)
    }

    /// Every reply duplicated: the client reads each echo twice.
    @Test(.enabled(if: UDPFaultEndToEndTests.python, "needs python3"))
    func duplicateOfEveryReplyDeliversEachTwice() async throws {
        let echo = try await PythonFixture.udpEchoServer()
        defer { echo.stop() }
        let (deck, _, registry, port) = try await Self.proxy(
            to: echo,
            Self.chance(.duplicate, 1, stream: .downstream)
        )
        let client = try UDPTestClient()
        let replies = try await offThePool {
            try ["one", "two"].flatMap { text -> [String?] in
                try client.send(Array(text.utf8), to: port)
                return (0..<2).map { _ in
                    client.receive(timeout: .seconds(10)).map { String(decoding: $0, as: UTF8.self) }
                }
            } + [client.receive(timeout: .milliseconds(300)).map { String(decoding: $0, as: UTF8.self) }]
        }
        #expect(replies == ["one", "one", "two", "two", nil])
        _ = try await deck.stop()
        #expect(registry.log.total == 2)
    }

    /// A 50 ms latency on the replies to datagrams holding `slow` adds about 50 ms to their round trips, and
    /// nothing to the others, sent in turn with them so that both meet the same load.
    @Test(.enabled(if: UDPFaultEndToEndTests.python, "needs python3"))
    func latencyAddsItsDelayToEachReply() async throws {
        let echo = try await PythonFixture.udpEchoServer()
        defer { echo.stop() }
        var attributes = ToxicAttributes()
        attributes.latency = 50
        let latency = Toxic(
            kind: .latency,
            stream: .downstream,
            attributes: attributes,
            placement: ToxicPlacement(match: Array("slow".utf8))
        )
        let (deck, _, registry, port) = try await Self.proxy(to: echo, latency)
        let client = try UDPTestClient()
        let (slow, fast) = try await offThePool {
            var slow: [Duration] = []
            var fast: [Duration] = []
            for index in 0..<9 {
                for label in ["slow", "fast"] {
                    let start = ContinuousClock.now
                    guard try Self.ask(client, "\(label) \(index)", port: port, wait: .seconds(10)) else {
                        throw TestProcessError("no echo for \(label) \(index)")
                    }
                    if label == "slow" {
                        slow.append(ContinuousClock.now - start)
                    } else {
                        fast.append(ContinuousClock.now - start)
                    }
                }
            }
            return (slow.sorted(), fast.sorted())
        }
        _ = try await deck.stop()
        // Every delayed datagram waits the toxic's 50 ms, and some undelayed one beats it: a floor and the toxic's
        // reach, not its accuracy, which the benchmark measures (two shared cores can stall any one reply).
        #expect(slow.allSatisfy { $0 >= .milliseconds(50) }, "\(slow)")
        #expect(fast[0] < .milliseconds(50), "slow \(slow), fast \(fast)")
        #expect(registry.log.total == 9)
    }
}

// MARK: - Record

extension UDPFaultEndToEndTests {
    /// The tape holds what each socket really sent: the client's second datagram, lost on its way, is not on it,
    /// and the first reply, duplicated, is on it twice.
    @Test(.enabled(if: UDPFaultEndToEndTests.python, "needs python3"))
    func recordingAFaultedFlowRecordsWhatEachSocketSent() async throws {
        let echo = try await PythonFixture.udpEchoServer()
        defer { echo.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("faulted.tape")
        let registry = FaultRegistry(seed: 1)
        let route = Route(upstream: .udp(host: "127.0.0.1", port: echo.port))
        var loss = Self.chance(.loss, 1, stream: .upstream)
        loss.placement.exchange = 2
        var duplicate = Self.chance(.duplicate, 1, stream: .downstream)
        duplicate.placement.exchange = 1
        try registry.faults(for: route).add(loss)
        try registry.faults(for: route).add(duplicate)
        var options = Deck.Options()
        options.faults = registry
        let deck = try await Deck.start(.record, tape: tape, routes: [route], options: options)
        let port = try #require(deck.address.port)
        let client = try UDPTestClient()
        let replies = try await offThePool {
            try client.send(Array("one".utf8), to: port)
            let first = (0..<2).map { _ in client.receive(timeout: .seconds(10)) }
            let second = try Self.ask(client, "two", port: port, wait: .milliseconds(400))
            let third = try Self.ask(client, "three", port: port, wait: .seconds(10))
            return [first.compactMap { $0 }.count == 2, second, third]
        }
        // Both copies of the first echo, none of the second, the third.
        #expect(replies == [true, false, true])
        _ = try await deck.stop()
        let reading = try Tape(readingAt: tape)
        let session = try #require(try reading.sessions().first?.id)
        let events = try reading.events(inSession: session)
        let shown = events.compactMap { event -> String? in
            guard let payload = event.payload else { return nil }
            let arrow = event.direction == Direction.clientToUpstream ? ">" : "<"
            return "\(arrow) \(String(decoding: payload, as: UTF8.self))"
        }
        #expect(shown == ["> one", "< one", "< one", "> three", "< three"])
        #expect(registry.log.fired.map(\.toxic) == ["duplicate_downstream", "loss_upstream"])
    }
}

// MARK: - DNS replay

extension UDPFaultEndToEndTests {
    /// dig against a replayed DNS tape: with the answers lost it times out, with the toxic removed it gets the
    /// recorded answer.
    @Test(.enabled(if: DNSEndToEndTests.available, "needs dnsmasq, dig and python3 with dnspython (.ci/run)"))
    func digTimesOutWhileReplayedAnswersAreLostAndIsAnsweredOnceTheToxicIsRemoved() async throws {
        let dnsmasq = try await DnsmasqServer()
        defer { dnsmasq.stop() }
        let directory = try TemporaryDirectory()
        let tape = directory.path("dns.tape")
        let question = ["www.tapedeck.test/A"]
        let recorded = try await dnsmasq.recordDig(question, to: tape)
        dnsmasq.stop()
        #expect(recorded.contains("192.0.2.10"), "\(recorded)")

        let registry = FaultRegistry(seed: 3)
        let route = Route(listen: try Endpoint(parsing: "udp:127.0.0.1:0"))
        try registry.faults(for: route).add(Self.chance(.loss, 1, stream: .downstream))
        var options = Deck.Options()
        options.faults = registry
        let replayer = try await Deck.start(.replay, tape: tape, routes: [route], options: options)
        let replayPort = try UDPEndToEndTests.port(of: replayer.address)
        let lost = try await offThePool { try DnsmasqServer.dig(port: replayPort, question) }
        #expect(lost.hasPrefix("exit 9") && lost.contains("timed out"), "\(lost)")
        try registry.faults(for: route).remove("loss_downstream")
        let answered = try await offThePool { try DnsmasqServer.dig(port: replayPort, question) }
        _ = try await replayer.stop()
        #expect(answered == recorded, "\(answered)")
        #expect(registry.log.total == 1)
        #expect(registry.log.fired.first?.type == "loss")
    }
}

// MARK: - Replay

extension UDPFaultEndToEndTests {
    /// On replay, the `upstream` toxics act on the client's datagrams before they are answered: the first one,
    /// lost (`count: 1`), is never answered and its retry is; the one that matches a `latency` toxic is answered
    /// late.
    @Test func replayLosesAndDelaysTheClientsDatagramsBeforeAnsweringThem() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("replayed.tape")
        let upstream = try await UDPTestUpstream.start()
        let recorder = try await Deck.start(.record, tape: tape, routes: [Route(upstream: upstream.endpoint)])
        let recordPort = try #require(recorder.address.port)
        let client = try UDPTestClient()
        let recorded = try await offThePool {
            try ["a", "b", "c"].map { try Self.ask(client, $0, port: recordPort, wait: .seconds(10)) }
        }
        #expect(recorded == [true, true, true])
        _ = try await recorder.stop()
        await upstream.stop()

        let registry = FaultRegistry(seed: 5)
        let route = Route(listen: .udp(host: "127.0.0.1", port: 0))
        var loss = Self.chance(.loss, 1, stream: .upstream)
        loss.placement.count = 1
        var attributes = ToxicAttributes()
        attributes.latency = 50
        let latency = Toxic(
            kind: .latency,
            stream: .upstream,
            attributes: attributes,
            placement: ToxicPlacement(match: Array("b".utf8))
        )
        try registry.faults(for: route).add(loss)
        try registry.faults(for: route).add(latency)
        var options = Deck.Options()
        options.faults = registry
        let replayer = try await Deck.start(.replay, tape: tape, routes: [route], options: options)
        let port = try #require(replayer.address.port)
        let replayClient = try UDPTestClient()
        let (answers, slow) = try await offThePool {
            let lost = try Self.ask(replayClient, "a", port: port, wait: .milliseconds(400))
            let retried = try Self.ask(replayClient, "a", port: port, wait: .seconds(10))
            let start = ContinuousClock.now
            let delayed = try Self.ask(replayClient, "b", port: port, wait: .seconds(10))
            let slow = ContinuousClock.now - start
            let plain = try Self.ask(replayClient, "c", port: port, wait: .seconds(10))
            return ([lost, retried, delayed, plain], slow)
        }
        let outcome = try await replayer.stop()
        #expect(answers == [false, true, true, true])
        #expect(slow >= .milliseconds(45) && slow < .seconds(5), "\(slow)")
        // The latency acted on "b" alone: the log has it once, at the third exchange. (Timing "c" against "b" would
        // measure the shared machine as much as the toxic.)
        #expect(registry.log.fired.map(\.type) == ["loss", "latency"])
        #expect(registry.log.fired.map(\.exchange) == [1, 3])
        let report = try #require(outcome.replay)
        #expect(report.mismatches.isEmpty, "\(report.mismatches)")
    }
}

// MARK: - Stopping

extension UDPFaultEndToEndTests {
    /// A graceful stop waits for the replies a `latency` toxic holds back: the client gets its echo, and the tape
    /// has it.
    @Test func aGracefulStopSendsTheDatagramsALatencyHoldsBack() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("stop.tape")
        let upstream = try await UDPTestUpstream.start()
        let registry = FaultRegistry()
        let route = Route(upstream: upstream.endpoint)
        var attributes = ToxicAttributes()
        attributes.latency = 300
        try registry.faults(for: route).add(Toxic(kind: .latency, stream: .downstream, attributes: attributes))
        var options = Deck.Options()
        options.faults = registry
        let deck = try await Deck.start(.record, tape: tape, routes: [route], options: options)
        let port = try #require(deck.address.port)
        let client = try UDPTestClient()
        try await offThePool { try client.send(Array("late".utf8), to: port) }
        // The reply is held once the toxic fired; stop then.
        for _ in 0..<200 where registry.log.total == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(registry.log.total == 1)
        let start = ContinuousClock.now
        _ = try await deck.stop()
        #expect(ContinuousClock.now - start >= .milliseconds(150))
        let reply = try await offThePool { client.receive(timeout: .seconds(5)) }
        await upstream.stop()
        #expect(reply == Array("late".utf8))
        let reading = try Tape(readingAt: tape)
        let session = try #require(try reading.sessions().first?.id)
        #expect(try reading.events(inSession: session).compactMap(\.payload).count == 2)
    }
}
