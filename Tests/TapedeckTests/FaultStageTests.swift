import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

@testable import Tapedeck

/// The fault stages on embedded channels: what each toxic passes on, when, and how half-close and reset stay
/// exact under it.
@Suite(.timeLimit(.minutes(1)))
struct FaultStageTests {
    /// What reached the handler behind an inbound stage, in order.
    final class Inbound: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer

        enum Seen: Equatable {
            case bytes(String)
            case fin
            case cut
            case reset
        }

        var seen: [Seen] = []

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: unwrapInboundIn(data))
            // Pieces that came in one batch are joined, so that assertions read as the peer would.
            if case .bytes(let earlier) = seen.last {
                seen[seen.count - 1] = .bytes(earlier + text)
            } else {
                seen.append(.bytes(text))
            }
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            seen.append(.bytes(""))
            seen.removeLast()
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? ChannelEvent, event == .inputClosed { seen.append(.fin) }
            if event is FaultCut { seen.append(.cut) }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if let error = error as? IOError, error.errnoCode == ECONNRESET { seen.append(.reset) }
        }
    }

    /// One connection's two stages, as a relay has them: the client's (upstream stream) and the upstream's
    /// (downstream stream), on one event loop.
    struct Connection {
        let loop: EmbeddedEventLoop
        let client: EmbeddedChannel
        let upstream: EmbeddedChannel
        let fromClient = Inbound()
        let fromUpstream = Inbound()

        init(faults: RouteFaults, loop: EmbeddedEventLoop) throws {
            self.loop = loop
            let conversation = FaultConversation(faults: faults, client: "127.0.0.1:1", logger: Logger(label: "test"))
            client = EmbeddedChannel(loop: loop)
            upstream = EmbeddedChannel(loop: loop)
            try client.pipeline.syncOperations.addHandlers(
                InboundFaultHandler(conversation: conversation, stream: .upstream),
                fromClient
            )
            try upstream.pipeline.syncOperations.addHandlers(
                InboundFaultHandler(conversation: conversation, stream: .downstream),
                fromUpstream
            )
        }

        func clientSends(_ text: String) throws { try client.writeInbound(ByteBuffer(string: text)) }
        func upstreamSends(_ text: String) throws { try upstream.writeInbound(ByteBuffer(string: text)) }
        func upstreamFIN() { upstream.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }
        func advance(_ milliseconds: Int64) { loop.advanceTime(by: .milliseconds(milliseconds)) }
    }

    private func route(_ toxics: Toxic...) throws -> RouteFaults {
        let faults = RouteFaults(route: "test", seed: 1)
        for toxic in toxics { try faults.add(toxic) }
        return faults
    }

    private func attributes(_ values: [String: Double]) -> ToxicAttributes {
        var attributes = ToxicAttributes()
        for (name, value) in values { _ = attributes.set(name, to: value) }
        return attributes
    }

    @Test func withoutToxicsBytesAndTheFINPassAtOnce() throws {
        let connection = try Connection(faults: try route(), loop: EmbeddedEventLoop())
        try connection.upstreamSends("hello")
        connection.upstreamFIN()
        #expect(connection.fromUpstream.seen == [.bytes("hello"), .fin])
    }

    @Test func latencyDelaysBytesAndTheFINAfterThemAlike() throws {
        let faults = try route(Toxic(kind: .latency, attributes: attributes(["latency": 100])))
        let connection = try Connection(faults: faults, loop: EmbeddedEventLoop())
        try connection.upstreamSends("hello")
        connection.advance(50)
        connection.upstreamFIN()
        connection.advance(49)
        #expect(connection.fromUpstream.seen.isEmpty)
        connection.advance(1)
        #expect(connection.fromUpstream.seen == [.bytes("hello")])
        connection.advance(49)
        #expect(connection.fromUpstream.seen == [.bytes("hello")])
        connection.advance(1)
        #expect(connection.fromUpstream.seen == [.bytes("hello"), .fin])
        // The other stream has no toxic: the client's bytes go at once.
        try connection.clientSends("PING")
        #expect(connection.fromClient.seen == [.bytes("PING")])
    }

    @Test func aResetPassesWhatWasHeldFirstThenTheReset() throws {
        let faults = try route(Toxic(kind: .latency, attributes: attributes(["latency": 100])))
        let connection = try Connection(faults: faults, loop: EmbeddedEventLoop())
        try connection.upstreamSends("partial")
        connection.upstream.pipeline.fireErrorCaught(IOError(errnoCode: ECONNRESET, reason: "read"))
        #expect(connection.fromUpstream.seen == [.bytes("partial"), .reset])
    }

    @Test func resetPeerPinnedToAnExchangeAndOffsetCutsThereExactly() throws {
        let faults = try route(
            Toxic(
                kind: .resetPeer,
                placement: ToxicPlacement(session: 1, exchange: 2, offset: 5)
            )
        )
        let connection = try Connection(faults: faults, loop: EmbeddedEventLoop())
        try connection.clientSends("GET /1")
        try connection.upstreamSends("first reply")
        try connection.clientSends("GET ")
        try connection.clientSends("/2")
        try connection.upstreamSends("0123")
        try connection.upstreamSends("456789")
        try connection.upstreamSends("more")
        connection.upstreamFIN()
        #expect(connection.fromUpstream.seen == [.bytes("first reply01234"), .cut, .reset])
        #expect(faults.toxics.count == 1)
    }

    @Test func resetPeerWaitsItsTimeoutAfterTheFirstBytes() throws {
        let faults = try route(Toxic(kind: .resetPeer, attributes: attributes(["timeout": 30])))
        let connection = try Connection(faults: faults, loop: EmbeddedEventLoop())
        try connection.upstreamSends("dropped")
        connection.advance(29)
        #expect(connection.fromUpstream.seen.isEmpty)
        connection.advance(1)
        #expect(connection.fromUpstream.seen == [.cut, .reset])
    }

    @Test func limitDataPassesItsBytesThenEndsTheStream() throws {
        let faults = try route(Toxic(kind: .limitData, attributes: attributes(["bytes": 7])))
        let connection = try Connection(faults: faults, loop: EmbeddedEventLoop())
        try connection.upstreamSends("abcd")
        try connection.upstreamSends("efghij")
        try connection.upstreamSends("klm")
        connection.upstreamFIN()
        #expect(connection.fromUpstream.seen == [.bytes("abcdefg"), .cut, .fin])
    }

    @Test func timeoutZeroHoldsEverythingUntilTheToxicGoes() throws {
        let faults = try route(Toxic(kind: .timeout))
        let loop = EmbeddedEventLoop()
        let connection = try Connection(faults: faults, loop: loop)
        try connection.upstreamSends("held")
        connection.upstreamFIN()
        connection.advance(10_000)
        #expect(connection.fromUpstream.seen.isEmpty)
        try faults.remove("timeout_downstream")
        loop.run()
        #expect(connection.fromUpstream.seen == [.bytes("held"), .fin])
    }

    @Test func timeoutDropsTheBytesAndClosesWhenItRunsOut() throws {
        let faults = try route(Toxic(kind: .timeout, attributes: attributes(["timeout": 100])))
        let connection = try Connection(faults: faults, loop: EmbeddedEventLoop())
        try connection.upstreamSends("never")
        connection.advance(99)
        #expect(connection.fromUpstream.seen.isEmpty)
        connection.advance(1)
        #expect(connection.fromUpstream.seen == [.cut, .fin])
    }

    @Test func bandwidthTricklesATenthOfASecondsWorthAtATime() throws {
        // 1 KB/s: 100 bytes every 100 ms.
        let faults = try route(Toxic(kind: .bandwidth, attributes: attributes(["rate": 1])))
        let connection = try Connection(faults: faults, loop: EmbeddedEventLoop())
        try connection.upstreamSends(String(repeating: "x", count: 250))
        connection.upstreamFIN()
        connection.advance(99)
        #expect(connection.fromUpstream.seen.isEmpty)
        connection.advance(1)
        #expect(connection.fromUpstream.seen == [.bytes(String(repeating: "x", count: 100))])
        connection.advance(149)
        #expect(connection.fromUpstream.seen == [.bytes(String(repeating: "x", count: 200))])
        connection.advance(1)
        #expect(connection.fromUpstream.seen == [.bytes(String(repeating: "x", count: 250)), .fin])
    }

    @Test func slicerCutsBytesIntoPiecesApart() throws {
        let faults = try route(
            Toxic(kind: .slicer, attributes: attributes(["average_size": 2, "size_variation": 0, "delay": 1000]))
        )
        let connection = try Connection(faults: faults, loop: EmbeddedEventLoop())
        try connection.upstreamSends("abcdef")
        #expect(connection.fromUpstream.seen == [.bytes("ab")])
        connection.advance(1)
        #expect(connection.fromUpstream.seen == [.bytes("abcd")])
        connection.advance(1)
        #expect(connection.fromUpstream.seen == [.bytes("abcdef")])
    }

    @Test func slowCloseHoldsOnlyTheEnd() throws {
        let faults = try route(Toxic(kind: .slowClose, attributes: attributes(["delay": 50])))
        let connection = try Connection(faults: faults, loop: EmbeddedEventLoop())
        try connection.upstreamSends("now")
        connection.upstreamFIN()
        #expect(connection.fromUpstream.seen == [.bytes("now")])
        connection.advance(50)
        #expect(connection.fromUpstream.seen == [.bytes("now"), .fin])
    }

    @Test func aMatchWithACountFailsThatManyRequestsThenIsRemoved() throws {
        let faults = try route(
            Toxic(kind: .resetPeer, placement: ToxicPlacement(match: Array("GET".utf8), count: 2))
        )
        let loop = EmbeddedEventLoop()
        var outcomes: [[Inbound.Seen]] = []
        for _ in 0..<3 {
            let connection = try Connection(faults: faults, loop: loop)
            try connection.clientSends("SET a 1")
            try connection.upstreamSends("OK")
            // The match may span reads.
            try connection.clientSends("G")
            try connection.clientSends("ET a")
            try connection.upstreamSends("1")
            outcomes.append(connection.fromUpstream.seen)
        }
        #expect(outcomes[0] == [.bytes("OK"), .cut, .reset])
        #expect(outcomes[1] == [.bytes("OK"), .cut, .reset])
        #expect(outcomes[2] == [.bytes("OK1")])
        #expect(faults.toxics.isEmpty)
    }

    @Test func anUpstreamToxicActsOnTheClientsBytes() throws {
        let faults = try route(
            Toxic(kind: .latency, stream: .upstream, attributes: attributes(["latency": 20]))
        )
        let connection = try Connection(faults: faults, loop: EmbeddedEventLoop())
        try connection.clientSends("PING")
        try connection.upstreamSends("PONG")
        #expect(connection.fromClient.seen.isEmpty)
        #expect(connection.fromUpstream.seen == [.bytes("PONG")])
        connection.advance(20)
        #expect(connection.fromClient.seen == [.bytes("PING")])
    }

    @Test func aToxicAddedLaterActsFromTheNextEventAndOneRemovedStops() throws {
        let faults = try route()
        let loop = EmbeddedEventLoop()
        let connection = try Connection(faults: faults, loop: loop)
        try connection.upstreamSends("a")
        try faults.add(Toxic(kind: .latency, attributes: attributes(["latency": 10])))
        loop.run()
        try connection.upstreamSends("b")
        #expect(connection.fromUpstream.seen == [.bytes("a")])
        connection.advance(10)
        #expect(connection.fromUpstream.seen == [.bytes("ab")])
        try faults.remove("latency_downstream")
        loop.run()
        try connection.upstreamSends("c")
        #expect(connection.fromUpstream.seen == [.bytes("abc")])
    }

    @Test func toxicityDrawsFollowTheSeedAlone() throws {
        let toxic = Toxic(kind: .latency, toxicity: 0.5)
        func drawn(seed: UInt64) -> [Bool] {
            let faults = RouteFaults(route: "r", seed: seed)
            return (1...64).map { faults.draws(toxic, session: $0) }
        }
        #expect(drawn(seed: 7) == drawn(seed: 7))
        #expect(drawn(seed: 7) != drawn(seed: 8))
        let share = drawn(seed: 7).filter { $0 }.count
        #expect((16...48).contains(share))
    }

    // MARK: Replay's outbound stage

    /// What reached the socket past an outbound stage.
    final class Outbound: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer

        var seen: [String] = []

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            seen.append(String(buffer: unwrapOutboundIn(data)))
            promise?.succeed()
        }

        func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
            seen.append(mode == .output ? "<FIN>" : "<close>")
            promise?.succeed()
        }
    }

    @Test func replaysRepliesAreDelayedWithTheirFINBehindThem() throws {
        let faults = try route(Toxic(kind: .latency, attributes: attributes(["latency": 40])))
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let socket = Outbound()
        let conversation = FaultConversation(faults: faults, client: "c", logger: Logger(label: "test"))
        try channel.pipeline.syncOperations.addHandlers(socket, OutboundFaultHandler(conversation: conversation))
        channel.writeAndFlush(ByteBuffer(string: "reply"), promise: nil)
        channel.close(mode: .output, promise: nil)
        #expect(socket.seen.isEmpty)
        loop.advanceTime(by: .milliseconds(40))
        #expect(socket.seen == ["reply", "<FIN>"])
    }

    @Test func replaysRepliesAreCutAfterTheirLimit() throws {
        let faults = try route(Toxic(kind: .limitData, attributes: attributes(["bytes": 3])))
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        let socket = Outbound()
        let conversation = FaultConversation(faults: faults, client: "c", logger: Logger(label: "test"))
        try channel.pipeline.syncOperations.addHandlers(socket, OutboundFaultHandler(conversation: conversation))
        channel.writeAndFlush(ByteBuffer(string: "reply"), promise: nil)
        channel.writeAndFlush(ByteBuffer(string: "more"), promise: nil)
        #expect(socket.seen == ["rep", "<FIN>"])
    }
}
