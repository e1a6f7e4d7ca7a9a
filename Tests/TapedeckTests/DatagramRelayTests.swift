import Foundation
import NIOCore
import Testing

@testable import Tapedeck

/// UDP routes in process: flows, their idle timeout, datagram boundaries, and replay by whole datagrams.
@Suite(.timeLimit(.minutes(3)))
struct DatagramRelayTests {
    private func route(_ upstream: UDPTestUpstream, idle: Duration = .seconds(30), dns: Bool = false) -> Route {
        Route(upstream: upstream.endpoint, dns: dns, udpIdleTimeout: idle)
    }

    @Test func aUDPUpstreamListensForDatagramsByDefault() throws {
        let route = Route(upstream: .udp(host: "127.0.0.1", port: 9))
        #expect(route.listen == .udp(host: "127.0.0.1", port: 0))
        #expect(route.isDatagram)
        #expect(!route.isDNS)
        #expect(Route(upstream: .udp(host: "127.0.0.1", port: 53)).isDNS)
    }

    @Test func aRouteMixingTransportsIsRefused() throws {
        let mixed = Route(listen: .tcp(host: "127.0.0.1", port: 5000), upstream: .udp(host: "127.0.0.1", port: 9))
        #expect(throws: TapedeckError.self) { try ProxyConfiguration(routes: [mixed]) }
        var tls = Route(upstream: .udp(host: "127.0.0.1", port: 9))
        tls.tls = TLSSettings(mode: .intercept)
        #expect(throws: TapedeckError.self) { try ProxyConfiguration(routes: [tls]) }
    }

    @Test func aFlowHoldsABoundedNumberOfDatagramsWhileItsUpstreamSocketOpens() throws {
        let flow = DatagramFlow(client: try SocketAddress(ipAddress: "127.0.0.1", port: 5000), session: nil)
        for _ in 0..<DatagramFlow.pendingLimit.count { #expect(flow.hold(ByteBuffer(string: "x"))) }
        #expect(!flow.hold(ByteBuffer(string: "one too many")))
        let big = DatagramFlow(client: try SocketAddress(ipAddress: "127.0.0.1", port: 5001), session: nil)
        let datagram = ByteBuffer(repeating: 0, count: DatagramSocket.maximumDatagram)
        var held = 0
        while held < 1_000, big.hold(datagram) { held += 1 }
        #expect(held == DatagramFlow.pendingLimit.bytes / DatagramSocket.maximumDatagram)
        big.drop()
        #expect(big.dropped == 1)
    }

    @Test func relaysDatagramsWholeAndRecordsOneEventEach() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("udp.tape")
        let upstream = try await UDPTestUpstream.start()
        let deck = try await Deck.start(.record, tape: tape, routes: [route(upstream)])
        let port = try #require(deck.address.port)
        #expect(deck.address.isDatagram)
        let client = try UDPTestClient()
        let sizes = [1, 1_400, DatagramSocket.maximumDatagram]
        let replies = try await offThePool {
            try sizes.map { size in
                // A generous wait: the whole suite runs at once on two cores.
                try client.exchange(
                    [UInt8]((0..<size).map { UInt8(truncatingIfNeeded: $0) }),
                    port: port,
                    timeout: .seconds(10)
                )
            }
        }
        for (size, reply) in zip(sizes, replies) {
            #expect(reply?.count == size)
            // Compared, not printed: a failure would print 65,507 numbers.
            #expect(reply.map { $0 == (0..<size).map { UInt8(truncatingIfNeeded: $0) } } == true)
        }
        try await deck.stop()
        await upstream.stop()

        let reading = try Tape(readingAt: tape)
        let sessions = try reading.sessions()
        #expect(sessions.count == 1)
        let events = try reading.events(inSession: try #require(sessions.first?.id))
        #expect(events.map(\.payload?.count) == [1, 1, 1_400, 1_400, 65_507, 65_507])
        #expect(
            events.map(\.direction)
                == Array(repeating: [.clientToUpstream, .upstreamToClient], count: 3).flatMap { $0 }
        )
        #expect(sessions.first?.outcome == .closed)
        #expect(sessions.first?.clientAddress.hasPrefix("udp:127.0.0.1:") == true)
        #expect(sessions.first?.droppedDatagrams == 0)
        #expect(try reading.routes().first?.listen.hasPrefix("udp:") == true)
    }

    @Test func aFlowEndsAfterItsIdleTimeoutAndTheSameClientStartsAnother() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("idle.tape")
        let upstream = try await UDPTestUpstream.start()
        let deck = try await Deck.start(.record, tape: tape, routes: [route(upstream, idle: .seconds(3))])
        let port = try #require(deck.address.port)
        let client = try UDPTestClient()
        #expect(
            try await offThePool { try client.exchange(Array("one".utf8), port: port, timeout: .seconds(10)) }
                == Array("one".utf8)
        )
        // The first flow ends on its own, well before the deck stops. (The timeout leaves a loaded machine time to
        // answer the first datagram: a reply after it would rightly find its flow gone.)
        let reading = try Tape(readingAt: tape)
        var ended = false
        for _ in 0..<150 where !ended {
            try await Task.sleep(for: .milliseconds(100))
            ended = try reading.sessions().first?.endedAt != nil
        }
        #expect(ended)
        #expect(
            try await offThePool { try client.exchange(Array("two".utf8), port: port, timeout: .seconds(10)) }
                == Array("two".utf8)
        )
        try await deck.stop()
        await upstream.stop()
        let sessions = try Tape(readingAt: tape).sessions()
        #expect(sessions.count == 2)
        #expect(sessions.map(\.outcome) == [.closed, .closed])
        #expect(sessions.map(\.clientBytes) == [3, 3])
    }

    @Test func replayAnswersEachClientFromItsOwnRecordedFlow() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("flows.tape")
        let upstream = try await UDPTestUpstream.start()
        let recording = try await Deck.start(.record, tape: tape, routes: [route(upstream)])
        let port = try #require(recording.address.port)
        // Two clients say the same first thing, then different things: each must be followed through its own flow.
        let first = try UDPTestClient()
        let second = try UDPTestClient()
        try await offThePool {
            _ = try first.exchange(Array("hello".utf8), port: port)
            _ = try second.exchange(Array("hello".utf8), port: port)
            _ = try first.exchange(Array("first".utf8), port: port)
            _ = try second.exchange(Array("second".utf8), port: port)
        }
        try await recording.stop()
        await upstream.stop()

        let replaying = try await Deck.start(.replay, tape: tape, routes: [Route()])
        #expect(replaying.address.isDatagram)
        let replayPort = try #require(replaying.address.port)
        let third = try UDPTestClient()
        let fourth = try UDPTestClient()
        let replies = try await offThePool {
            [
                try fourth.exchange(Array("hello".utf8), port: replayPort),
                try third.exchange(Array("hello".utf8), port: replayPort),
                try third.exchange(Array("first".utf8), port: replayPort),
                try fourth.exchange(Array("second".utf8), port: replayPort),
                try fourth.exchange(Array("unheard".utf8), port: replayPort, timeout: .milliseconds(300)),
            ]
        }
        #expect(
            replies[0...3].map { $0.map { String(decoding: $0, as: UTF8.self) } } == [
                "hello", "hello", "first", "second",
            ]
        )
        #expect(replies[4] == nil)
        let outcome = try await replaying.stop()
        let report = try #require(outcome.replay)
        #expect(report.connections == 2)
        #expect(report.mismatches.count == 1)
        #expect(report.mismatches.first?.actual == "unheard")
        #expect(report.mismatches.first?.reason.contains("never saw") == true)
        #expect(report.unused.isEmpty)
        #expect(report.replayed.count == 1)
    }

    @Test func aDatagramStreamIsRecordedWhole() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("stream.tape")
        let upstream = try await UDPTestUpstream.start(echoes: false)
        let deck = try await Deck.start(.record, tape: tape, routes: [route(upstream)])
        let port = try #require(deck.address.port)
        let client = try UDPTestClient()
        let count = 2_000
        try await offThePool {
            for index in 0..<count {
                try client.send(Array("requests:\(index)|c".utf8), to: port)
                // A modest rate: loopback does not drop, and neither may the relay.
                if index % 100 == 99 { usleep(2_000) }
            }
        }
        for _ in 0..<50 where upstream.receivedCount < count { try await Task.sleep(for: .milliseconds(50)) }
        try await deck.stop()
        await upstream.stop()
        #expect(upstream.receivedCount == count)
        let reading = try Tape(readingAt: tape)
        let session = try #require(reading.sessions().first)
        #expect(session.eventCount == Int64(count))
        #expect(session.droppedDatagrams == 0)
        let events = try reading.events(inSession: try #require(session.id))
        #expect(events.last.map { String(decoding: $0.payload ?? Data(), as: UTF8.self) } == "requests:\(count - 1)|c")
    }

    @Test func aRefusedDatagramIsRecorded() async throws {
        let directory = try TemporaryDirectory()
        let tape = directory.path("refused.tape")
        // A port nothing listens on, which the kernel answers with ICMP port unreachable: a privileged one, since a
        // free port a test released could be taken at once by another test's listener on port 0.
        let endpoint = Endpoint.udp(host: "127.0.0.1", port: 9)
        let deck = try await Deck.start(.record, tape: tape, routes: [Route(upstream: endpoint)])
        let port = try #require(deck.address.port)
        let client = try UDPTestClient()
        let reading = try Tape(readingAt: tape)
        // Datagrams until the refusal is on tape: on a loaded machine the flow's socket may open late, and a
        // refusal may end a flow, so the next datagram starts another one. Bounded in count and time.
        var refused = false
        for _ in 0..<50 where !refused {
            try await offThePool { try client.send(Array("anyone?".utf8), to: port) }
            try await Task.sleep(for: .milliseconds(200))
            refused = try reading.sessions().contains { session in
                try reading.events(inSession: try #require(session.id)).contains { $0.kind == .refused }
            }
        }
        try await deck.stop()
        let kinds = try Tape(readingAt: tape).sessions().flatMap { session in
            try reading.events(inSession: try #require(session.id)).map(\.kind)
        }
        #expect(kinds.contains(.refused))
    }
}
