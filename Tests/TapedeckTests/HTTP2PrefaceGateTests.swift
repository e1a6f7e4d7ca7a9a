import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP2
import NIOTLS
import Testing

@testable import Tapedeck

/// The gate in front of a replayed connection of an HTTP/2 route, on embedded channels: the client preface, cut
/// anywhere, puts NIOHTTP2's server handler in its place; anything else the byte-level replay handler, which then
/// sees the channel become active and every byte.
struct HTTP2PrefaceGateTests {
    /// Stands for the byte-level replay handler: what it was told.
    final class Fallback: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var active = false
        var bytes: [UInt8] = []

        func channelActive(context: ChannelHandlerContext) {
            active = true
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            bytes += unwrapInboundIn(data).readableBytesView
        }
    }

    static func connection() throws -> (EmbeddedChannel, ReplayLedger) {
        let channel = EmbeddedChannel()
        let ledger = ReplayLedger()
        let book = HTTP2ReplayBook(route: "default", streams: [], sessionIDs: [], repeatable: false)
        try channel.pipeline.syncOperations.addHandler(
            HTTP2PrefaceGate(
                settings: .init(
                    route: "default",
                    book: book,
                    ledger: ledger,
                    logger: Logger(label: "test"),
                    makeFallback: { Fallback() }
                )
            )
        )
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        return (channel, ledger)
    }

    @Test func http1OnAnHTTP2RouteGoesToTheByteLevelHandlerWithItsBytes() throws {
        let request = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        for cut in 1..<request.count {
            let (channel, _) = try Self.connection()
            try channel.writeInbound(ByteBuffer(bytes: request[..<cut]))
            try channel.writeInbound(ByteBuffer(bytes: request[cut...]))
            let fallback = try channel.pipeline.syncOperations.handler(type: Fallback.self)
            #expect(fallback.active, "cut \(cut)")
            #expect(fallback.bytes == request, "cut \(cut)")
            #expect(throws: (any Error).self) {
                try channel.pipeline.syncOperations.handler(type: HTTP2PrefaceGate.self)
            }
            _ = try channel.finish()
        }
    }

    @Test func thePrefaceCutAnywhereGetsTheLiveConnectionsOwnSettings() throws {
        // The preface, then an empty SETTINGS frame.
        let opening = HTTP2FrameReader.preface + [0, 0, 0, 4, 0, 0, 0, 0, 0]
        for cut in 1..<opening.count {
            let (channel, ledger) = try Self.connection()
            try channel.writeInbound(ByteBuffer(bytes: opening[..<cut]))
            try channel.writeInbound(ByteBuffer(bytes: opening[cut...]))
            _ = try channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self)
            #expect(throws: (any Error).self) { try channel.pipeline.syncOperations.handler(type: Fallback.self) }
            // NIOHTTP2 answered: its SETTINGS first, then the acknowledgement of the client's.
            var written: [UInt8] = []
            while let buffer = try channel.readOutbound(as: ByteBuffer.self) { written += buffer.readableBytesView }
            var reader = HTTP2FrameReader(expectingPreface: false)
            let frames = reader.feed(written)
            #expect(frames.first?.kind == .settings && frames.first?.has(HTTP2WireFrame.Flag.ack) == false)
            #expect(frames.contains { $0.kind == .settings && $0.has(HTTP2WireFrame.Flag.ack) }, "cut \(cut)")
            _ = try? channel.finish()
            // A connection that asked for nothing is a probe, not a replay or a mismatch.
            let report = ledger.snapshot(unused: [], incomplete: [])
            #expect(report.connections == 1 && report.probes == 1 && report.mismatches.isEmpty, "cut \(cut)")
        }
    }

    /// Behind TLS, the handshake's completion comes before the first plaintext byte: the preface still decides.
    @Test func aTLSHandshakeCompletedInFrontDecidesNothing() throws {
        let (channel, _) = try Self.connection()
        channel.pipeline.fireUserInboundEventTriggered(TLSUserEvent.handshakeCompleted(negotiatedProtocol: "h2"))
        try channel.writeInbound(ByteBuffer(bytes: HTTP2FrameReader.preface))
        _ = try channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self)
        #expect(throws: (any Error).self) { try channel.pipeline.syncOperations.handler(type: Fallback.self) }
        _ = try? channel.finish()
    }

    @Test func aClientThatLeavesBeforeSayingEnoughIsCountedByTheByteLevelHandler() throws {
        let (channel, _) = try Self.connection()
        try channel.writeInbound(ByteBuffer(bytes: HTTP2FrameReader.preface.prefix(5)))
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        let fallback = try channel.pipeline.syncOperations.handler(type: Fallback.self)
        #expect(fallback.active && fallback.bytes == Array(HTTP2FrameReader.preface.prefix(5)))
        _ = try channel.finish()
    }
}
