import Foundation
import Logging
import NIOCore
import NIOHTTP2

/// Decides, from a connection's first bytes, whether replay serves it through the HTTP/2 lens or byte for byte:
/// the client preface (prior knowledge, or what follows a TLS handshake that chose `h2`) puts NIOHTTP2's server
/// handler in the gate's place, with an ``HTTP2StreamReplayHandler`` per stream; anything else (HTTP/1.1 on the same
/// route) puts the byte-level ``ReplayHandler`` there. The bytes read so far are then passed on.
///
/// The gate holds back the channel's activation until it has decided, so that the byte-level handler starts as
/// on any connection, and a recorded upstream's opening bytes (an HTTP/2 upstream's SETTINGS) are never sent to a
/// client that gets the live connection's own.
final class HTTP2PrefaceGate: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    /// What serves an HTTP/2 connection, and what replaces the gate otherwise.
    struct Settings: Sendable {
        var route: String
        var book: HTTP2ReplayBook
        var ledger: ReplayLedger
        var logger: Logger
        /// Makes the byte-level handler for a connection that is not HTTP/2.
        var makeFallback: @Sendable () -> any ChannelHandler
    }

    private let settings: Settings
    private var buffered: ByteBuffer?
    private var activated = false
    private var decided = false
    /// Puts an upgraded request in as stream 1, when the connection began with `Upgrade: h2c`.
    private var upgrade: HTTP2UpgradeInjector?

    init(settings: Settings) {
        self.settings = settings
    }

    func channelActive(context: ChannelHandlerContext) {
        // Held back until the first bytes decide who serves the connection.
        activated = true
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        guard !decided else { return context.fireChannelRead(data) }
        if buffered == nil {
            buffered = buffer
        } else {
            buffered!.writeBuffer(&buffer)
        }
        let preface = HTTP2FrameReader.preface
        let held = buffered!.readableBytesView
        let compared = min(held.count, preface.count)
        if !held.prefix(compared).elementsEqual(preface.prefix(compared)) {
            upgradeOrPass(context: context)
        } else if compared == preface.count {
            pass(context: context, http2: true)
        }
    }

    /// Not the preface: an HTTP/1.1 request asking to upgrade to h2c becomes stream 1 of an HTTP/2 connection
    /// that replay serves; anything else goes to the byte-level handler. Holds the head until it is whole.
    private func upgradeOrPass(context: ChannelHandlerContext) {
        let held = buffered!.readableBytesView
        guard let first = held.first, (0x41...0x5A).contains(first) else { return pass(context: context, http2: false) }
        guard let end = HTTP2UpgradeRequest.headLength(in: held) else {
            if held.count > HTTP2UpgradeRequest.maximumHeadLength { pass(context: context, http2: false) }
            return
        }
        guard let request = HTTP2UpgradeRequest(head: held.prefix(end)) else {
            return pass(context: context, http2: false)
        }
        guard held.count >= end + request.contentLength else { return }
        let body = held.dropFirst(end).prefix(request.contentLength)
        buffered!.moveReaderIndex(forwardBy: end + request.contentLength)
        upgrade = HTTP2UpgradeInjector(frames: request.frames(body: body))
        context.writeAndFlush(NIOAny(ByteBuffer(bytes: HTTP2UpgradeRequest.switchingProtocols)), promise: nil)
        pass(context: context, http2: true)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The client's end decides (it will say no more); other events (a TLS handshake completed in front) come
        // before the first bytes and decide nothing.
        if !decided, case .inputClosed = event as? ChannelEvent { pass(context: context, http2: false) }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !decided { pass(context: context, http2: false) }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A client that left before saying enough: the byte-level handler counts it, as a probe or a mismatch.
        if !decided { pass(context: context, http2: false) }
        context.fireChannelInactive()
    }

    /// Puts the chosen handlers after the gate, activates them, passes the bytes held, and steps out.
    private func pass(context: ChannelHandlerContext, http2: Bool) {
        decided = true
        do {
            if http2 {
                try addHTTP2(context: context)
            } else {
                try context.pipeline.syncOperations.addHandler(settings.makeFallback())
            }
        } catch {
            settings.logger.warning("cannot serve a replayed connection: \(error)")
            context.close(promise: nil)
            return
        }
        if activated { context.fireChannelActive() }
        if let buffered {
            self.buffered = nil
            context.fireChannelRead(wrapInboundOut(buffered))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    private func addHTTP2(context: ChannelHandlerContext) throws {
        let settings = self.settings
        settings.ledger.connectionOpened()
        let replay = HTTP2ConnectionReplay(
            route: settings.route,
            book: settings.book,
            ledger: settings.ledger,
            logger: settings.logger,
            client: context.channel.remoteAddress.map { "\(Endpoint($0))" } ?? "unknown"
        )
        let connection = NIOLoopBound(replay, eventLoop: context.eventLoop)
        context.channel.closeFuture.whenComplete { _ in connection.value.closed() }
        let handler = NIOHTTP2Handler(
            mode: .server,
            eventLoop: context.eventLoop,
            connectionConfiguration: Self.connectionConfiguration,
            streamConfiguration: Self.streamConfiguration
        ) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(
                    HTTP2StreamReplayHandler(book: settings.book, connection: connection)
                )
            }
        }
        if let upgrade { try context.pipeline.syncOperations.addHandler(upgrade) }
        try context.pipeline.syncOperations.addHandler(handler)
    }

    /// The live connection's settings: NIOHTTP2's defaults, with room for many concurrent calls, and without the
    /// limits that guard a server against abuse (a replay serves a test's own client, and gRPC's bandwidth probes
    /// are PINGs by the hundred); the recorded headers and bodies are passed on as recorded, unvalidated.
    static var connectionConfiguration: NIOHTTP2Handler.ConnectionConfiguration {
        var configuration = NIOHTTP2Handler.ConnectionConfiguration()
        configuration.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: 1000),
            HTTP2Setting(parameter: .maxHeaderListSize, value: 1 << 16),
        ]
        configuration.headerBlockValidation = .disabled
        configuration.contentLengthValidation = .disabled
        configuration.maximumBufferedControlFrames = 100_000
        // NIOHTTP2 keeps a timestamp per frame counted, so the window is short rather than the count large:
        // 10,000 a second is beyond any client's probes.
        configuration.controlFrameRateLimit.maximumCount = 500
        configuration.controlFrameRateLimit.windowLength = .milliseconds(50)
        configuration.maximumConnectionGlitches = Int.max / 2
        configuration.targetWindowSize = 1 << 20
        return configuration
    }

    /// Each stream's settings: NIOHTTP2's, without the reset and error rate limits (a test's client cancels and
    /// times out calls on purpose).
    static var streamConfiguration: NIOHTTP2Handler.StreamConfiguration {
        var configuration = NIOHTTP2Handler.StreamConfiguration()
        configuration.streamResetFrameRateLimit.maximumCount = 500
        configuration.streamResetFrameRateLimit.windowLength = .milliseconds(50)
        configuration.streamErrorRateLimit.maximumCount = 500
        configuration.streamErrorRateLimit.windowLength = .milliseconds(50)
        return configuration
    }
}
