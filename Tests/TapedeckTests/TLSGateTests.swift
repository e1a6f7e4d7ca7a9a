import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOSSL
import NIOTLS
import Testing

@testable import Tapedeck

/// TLS put in place where a session's bytes show it starting, on embedded channels, with the client's bytes split
/// at every position: the ClientHello parser, replay's gate, and the relay's two gates with a real TLS upstream.
/// The loops over every split yield between splits, so that the suites that measure time still get a thread.
@Suite(.serialized)
struct TLSGateTests {
    /// A CA in a fresh directory, and the contexts made from it.
    final class Fixture: Sendable {
        let directory: String
        let contexts: TLSContexts

        init() throws {
            directory = NSTemporaryDirectory() + "tapedeck-tls-\(UUID().uuidString.prefix(8))"
            contexts = TLSContexts(authorityDirectory: directory)
            _ = try contexts.certificateAuthority()
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }

        var caPath: String { directory + "/" + CertificateAuthority.certificateFileName }

        /// A client handler that trusts the CA and asks for `name` with `protocols`.
        func clientHandler(
            name: String = "db.test",
            protocols: [String] = ["h2", "http/1.1"]
        ) throws
            -> NIOSSLClientHandler
        {
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.trustRoots = .file(caPath)
            configuration.applicationProtocols = protocols
            return try NIOSSLClientHandler(context: NIOSSLContext(configuration: configuration), serverHostname: name)
        }
    }

    /// Collects what reaches the end of a pipeline: plaintext bytes and TLS events.
    final class Sink: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var bytes: [UInt8] = []
        var negotiated: [String?] = []

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            bytes += unwrapInboundIn(data).readableBytesView
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? TLSUserEvent, case .handshakeCompleted(let protocolName) = event {
                negotiated.append(protocolName)
            }
        }
    }

    /// The bytes a real client sends first: NIOSSL's ClientHello, asking for `name` with `protocols`.
    static func clientHello(
        _ fixture: Fixture,
        name: String = "db.test",
        protocols: [String] = ["h2", "http/1.1"]
    )
        throws -> (EmbeddedChannel, [UInt8])
    {
        let client = EmbeddedChannel()
        try client.pipeline.syncOperations.addHandler(try fixture.clientHandler(name: name, protocols: protocols))
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (client, try drain(client))
    }

    /// Everything a channel wrote, as bytes.
    static func drain(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
        return bytes
    }

    /// Passes bytes between two channels until neither has more to say; at most `rounds` times.
    static func pump(_ a: EmbeddedChannel, _ b: EmbeddedChannel, rounds: Int = 10) throws {
        for _ in 0..<rounds {
            let fromA = try drain(a)
            let fromB = try drain(b)
            if fromA.isEmpty, fromB.isEmpty { return }
            if !fromA.isEmpty { try b.writeInbound(ByteBuffer(bytes: fromA)) }
            if !fromB.isEmpty { try a.writeInbound(ByteBuffer(bytes: fromB)) }
        }
    }

    static let sslRequest: [UInt8] = [0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F]

    // MARK: TLSHello

    @Test func aClientHelloIsReadAtItsEndAndNotBefore() throws {
        let fixture = try Fixture()
        let (_, hello) = try Self.clientHello(fixture, name: "api.example.test", protocols: ["h2", "http/1.1"])
        for end in 0..<hello.count {
            guard case .incomplete = TLSHello.parseClientHello(hello[..<end]) else {
                Issue.record("a ClientHello cut at \(end) of \(hello.count) bytes was not incomplete")
                return
            }
        }
        guard case .complete(let parsed) = TLSHello.parseClientHello(hello) else {
            Issue.record("the whole ClientHello did not parse")
            return
        }
        #expect(parsed.serverName == "api.example.test")
        #expect(parsed.applicationProtocols == ["h2", "http/1.1"])
    }

    @Test func plaintextIsNotAClientHello() {
        for bytes in ["GET / HTTP/1.1\r\n", "\u{16}\u{1}abc"] {
            guard case .invalid = TLSHello.parseClientHello(Array(bytes.utf8)) else {
                Issue.record("\(bytes.debugDescription) parsed as a ClientHello")
                continue
            }
        }
    }

    @Test func aServerHelloGivesTheVersionAndCipher() throws {
        let fixture = try Fixture()
        let (_, hello) = try Self.clientHello(fixture)
        let server = EmbeddedChannel()
        let context = try fixture.contexts.server(
            name: "db.test",
            applicationProtocols: [],
            settings: TLSSettings(mode: .intercept)
        )
        try server.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try server.writeInbound(ByteBuffer(bytes: hello))
        let answer = try Self.drain(server)
        for end in 0..<min(answer.count, 100) {
            guard case .incomplete = TLSHello.parseServerHello(answer[..<end]) else {
                Issue.record("a ServerHello cut at \(end) was not incomplete")
                return
            }
        }
        guard case .complete(let parsed) = TLSHello.parseServerHello(answer) else {
            Issue.record("the ServerHello did not parse")
            return
        }
        #expect(parsed.version == "TLSv1.3")
        #expect(parsed.cipher.hasPrefix("TLS_"))
    }

    // MARK: Replay's gate

    /// A replayed connection: the gate in front of a sink standing for the replay handler.
    static func replayConnection(_ fixture: Fixture, profile: ReplayTLSProfile) throws -> (EmbeddedChannel, Sink) {
        let channel = EmbeddedChannel()
        let sink = Sink()
        try channel.pipeline.syncOperations.addHandlers(
            ReplayTLSGate(
                route: Route(name: "db"),
                profile: profile,
                contexts: fixture.contexts,
                logger: Logger(label: "test")
            ),
            sink
        )
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        return (channel, sink)
    }

    @Test func replayServesTLSAfterPostgresUpgradeWhereverTheBytesSplit() async throws {
        let fixture = try Fixture()
        let helloLength = try Self.clientHello(fixture).1.count
        // Every split of the upgrade request and of the ClientHello; the answer `S` comes between them.
        for split in 1..<(8 + helloLength) {
            // Each split is a few handshakes' work: the cooperative threads are the other suites' too.
            await Task.yield()
            let (client, hello) = try Self.clientHello(fixture)
            let stream = Self.sslRequest + hello
            let (channel, sink) = try Self.replayConnection(
                fixture,
                profile: ReplayTLSProfile(serverNames: ["db.test"], applicationProtocols: ["http/1.1"])
            )
            let firstPart = Array(stream[..<min(split, Self.sslRequest.count)])
            try channel.writeInbound(ByteBuffer(bytes: firstPart))
            if split < Self.sslRequest.count {
                try channel.writeInbound(ByteBuffer(bytes: Self.sslRequest[split...]))
            }
            #expect(sink.bytes == Self.sslRequest, "split \(split): the request passes as plaintext")
            // What the tape answers, written by the replay handler.
            channel.writeAndFlush(ByteBuffer(string: "S"), promise: nil)
            #expect(try Self.drain(channel) == [UInt8(ascii: "S")])
            let tlsStart = max(split, Self.sslRequest.count)
            if tlsStart > Self.sslRequest.count {
                try channel.writeInbound(ByteBuffer(bytes: stream[Self.sslRequest.count..<tlsStart]))
            }
            try channel.writeInbound(ByteBuffer(bytes: stream[tlsStart...]))
            #expect(sink.bytes == Self.sslRequest, "split \(split): no TLS byte reaches the replay handler")
            // The held ClientHello went into the new TLS handler: a handshake answer came out.
            try Self.pump(client, channel)
            #expect(sink.negotiated == ["http/1.1"], "split \(split): handshake with the recorded protocol")
            client.writeAndFlush(ByteBuffer(string: "SELECT 1"), promise: nil)
            try Self.pump(client, channel)
            #expect(sink.bytes == Self.sslRequest + Array("SELECT 1".utf8), "split \(split): plaintext after TLS")
        }
    }

    @Test func replayHoldsWhatTheUpstreamSaidFirstInsideTLSUntilTheHandshake() throws {
        let fixture = try Fixture()
        let (client, hello) = try Self.clientHello(fixture)
        let (channel, sink) = try Self.replayConnection(
            fixture,
            profile: ReplayTLSProfile(serverNames: ["db.test"], applicationProtocols: ["h2"], directOnly: true)
        )
        // An HTTP/2 upstream's SETTINGS, replayed before the client's first byte.
        channel.writeAndFlush(ByteBuffer(bytes: [0, 0, 0, 4, 0, 0, 0, 0, 0]), promise: nil)
        #expect(try Self.drain(channel).isEmpty, "nothing in plaintext before the handshake")
        for byte in hello { try channel.writeInbound(ByteBuffer(bytes: [byte])) }
        let clientSink = Sink()
        try client.pipeline.syncOperations.addHandler(clientSink)
        try Self.pump(client, channel)
        #expect(sink.negotiated == ["h2"])
        #expect(clientSink.bytes == [0, 0, 0, 4, 0, 0, 0, 0, 0], "the SETTINGS arrive inside TLS")
    }

    // MARK: The relay's gates

    /// A relayed connection: the client's and the upstream's pipelines, each a gate in front of a sink standing
    /// for its relay handler, and a real TLS upstream behind the upstream's.
    static func relayConnection(
        _ fixture: Fixture,
        mode: TLSSettings.Mode = .intercept
    ) throws -> (
        client: EmbeddedChannel, clientSink: Sink, upstream: EmbeddedChannel, upstreamSink: Sink,
        realUpstream: EmbeddedChannel
    ) {
        let route = Route(
            name: "db",
            upstream: .tcp(host: "127.0.0.1", port: 5432),
            tls: TLSSettings(mode: mode, upstreamCA: fixture.caPath)
        )
        let session = TLSRelaySession(
            route: route,
            contexts: fixture.contexts,
            recorder: nil,
            logger: Logger(label: "test")
        )
        let client = EmbeddedChannel()
        let clientSink = Sink()
        try client.pipeline.syncOperations.addHandlers(session.clientGate(), clientSink)
        try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 3)).wait()
        let upstream = EmbeddedChannel()
        let upstreamSink = Sink()
        try upstream.pipeline.syncOperations.addHandlers(session.upstreamGate(), upstreamSink)
        try upstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 4)).wait()
        // The real upstream serves a leaf of the same CA for the name the client asks for.
        let realUpstream = EmbeddedChannel()
        let context = try fixture.contexts.server(
            name: "db.test",
            applicationProtocols: ["http/1.1"],
            settings: TLSSettings(mode: .intercept)
        )
        try realUpstream.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
        try realUpstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 5)).wait()
        return (client, clientSink, upstream, upstreamSink, realUpstream)
    }

    @Test func interceptStartsBothHandshakesAfterPostgresUpgradeWhereverTheBytesSplit() async throws {
        let fixture = try Fixture()
        let helloLength = try Self.clientHello(fixture).1.count
        for split in 1..<(8 + helloLength) {
            // Each split is a few handshakes' work: the cooperative threads are the other suites' too.
            await Task.yield()
            let (realClient, hello) = try Self.clientHello(fixture)
            let stream = Self.sslRequest + hello
            let relay = try Self.relayConnection(fixture)
            // The client's upgrade request, split, reaches the upstream's relay handler (the client's sink).
            try relay.client.writeInbound(ByteBuffer(bytes: stream[..<min(split, 8)]))
            if split < 8 { try relay.client.writeInbound(ByteBuffer(bytes: stream[split..<8])) }
            #expect(relay.clientSink.bytes == Self.sslRequest, "split \(split)")
            // The upstream answers S, which passes to the client.
            try relay.upstream.writeInbound(ByteBuffer(string: "S"))
            #expect(relay.upstreamSink.bytes == [UInt8(ascii: "S")], "split \(split)")
            // The ClientHello, split, is held: no TLS byte reaches a relay handler.
            let tlsStart = max(split, 8)
            if tlsStart > 8 { try relay.client.writeInbound(ByteBuffer(bytes: stream[8..<tlsStart])) }
            try relay.client.writeInbound(ByteBuffer(bytes: stream[tlsStart...]))
            #expect(relay.clientSink.bytes == Self.sslRequest, "split \(split): TLS bytes are held")
            // The upstream's handshake starts with the client's name, against the real upstream.
            try Self.pump(relay.upstream, relay.realUpstream)
            #expect(relay.upstreamSink.negotiated == ["http/1.1"], "split \(split): upstream handshake done")
            // Then the client's, offering what the upstream chose.
            try Self.pump(realClient, relay.client)
            #expect(relay.clientSink.negotiated == ["http/1.1"], "split \(split): client handshake done")
            realClient.writeAndFlush(ByteBuffer(string: "Q"), promise: nil)
            try Self.pump(realClient, relay.client)
            #expect(relay.clientSink.bytes == Self.sslRequest + [UInt8(ascii: "Q")], "split \(split): plaintext")
        }
    }

    @Test func terminateAnswersPostgresUpgradeItselfWhereverTheBytesSplit() async throws {
        let fixture = try Fixture()
        let helloLength = try Self.clientHello(fixture).1.count
        for split in 1..<(8 + helloLength) {
            // Each split is a few handshakes' work: the cooperative threads are the other suites' too.
            await Task.yield()
            let (realClient, hello) = try Self.clientHello(fixture)
            let stream = Self.sslRequest + hello
            let relay = try Self.relayConnection(fixture, mode: .terminate)
            try relay.client.writeInbound(ByteBuffer(bytes: stream[..<split]))
            try relay.client.writeInbound(ByteBuffer(bytes: stream[split...]))
            // The plaintext upstream hears nothing of the upgrade: Tapedeck answered it.
            #expect(relay.clientSink.bytes.isEmpty, "split \(split)")
            let answer = try Self.drain(relay.client)
            #expect(answer.first == UInt8(ascii: "S"), "split \(split)")
            try realClient.writeInbound(ByteBuffer(bytes: answer.dropFirst()))
            try Self.pump(realClient, relay.client)
            #expect(relay.clientSink.negotiated.count == 1, "split \(split): client handshake done")
            realClient.writeAndFlush(ByteBuffer(string: "Q"), promise: nil)
            try Self.pump(realClient, relay.client)
            #expect(relay.clientSink.bytes == [UInt8(ascii: "Q")], "split \(split): plaintext to the upstream")
        }
    }

    @Test func aPlaintextClientOnAnInterceptRouteIsClosed() throws {
        let fixture = try Fixture()
        let relay = try Self.relayConnection(fixture)
        try relay.client.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
        #expect(relay.clientSink.bytes.isEmpty, "nothing reaches the upstream")
        #expect(!relay.client.isActive, "the client is closed")
    }

    @Test func anUpstreamWhoseCertificateDoesNotVerifyFailsTheSession() throws {
        let fixture = try Fixture()
        let other = try Fixture()  // an upstream signed by a CA the route does not trust
        let (_, hello) = try Self.clientHello(fixture)
        let relay = try Self.relayConnection(fixture)
        let stranger = EmbeddedChannel()
        try stranger.pipeline.syncOperations.addHandler(
            NIOSSLServerHandler(
                context: try other.contexts.server(
                    name: "db.test",
                    applicationProtocols: [],
                    settings: TLSSettings(mode: .intercept)
                )
            )
        )
        try stranger.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 6)).wait()
        try relay.client.writeInbound(ByteBuffer(bytes: hello))
        _ = try? Self.pump(relay.upstream, stranger)
        #expect(relay.upstreamSink.negotiated.isEmpty)
        #expect(!relay.client.isActive, "the client is closed")
    }
}
