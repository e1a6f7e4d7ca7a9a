import NIOCore
import NIOPosix

/// One half of a relay: sits in one channel's pipeline and hands everything it reads to its partner, the
/// handler in the other channel of the same session.
///
/// Both channels of a session live on the same event loop, so partners call each other directly. The handler
/// carries the three things a faithful relay needs beyond copying bytes:
/// - backpressure: a read is only passed on while the partner's channel is writable (and, when recording, while
///   the tape writer has room);
/// - half-close: end of input on one side becomes a write shutdown on the other, after its queued writes;
/// - reset: a connection reset on one side resets the other (`SO_LINGER` 0), rather than closing it cleanly.
///
/// When a session recorder is attached, every read, half-close, close and reset is reported to it as it happens.
final class RelayHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Which connection of the session this handler sits on.
    enum Side: Sendable {
        case client
        case upstream

        /// The direction of the bytes this side's peer sends.
        var direction: Direction {
            switch self {
            case .client: return .clientToUpstream
            case .upstream: return .upstreamToClient
            }
        }
    }

    /// Sent through a pipeline to reset a connection on the relay's own initiative: at shutdown, when the drain
    /// time is up (`interrupted`), or when the upstream cannot be reached.
    struct ResetRequest: Sendable {
        var interrupted: Bool
    }

    let side: Side
    private let lingerTimeout: TimeAmount
    private let recorder: SessionRecorder?
    private var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    /// A read was requested while it could not be served; issued when the partner or the tape has room.
    private var pendingRead = false
    private var waitingForTape = false
    /// The peer sent FIN.
    private var inputEnded = false
    /// We shut this side's output down, forwarding the partner's FIN.
    private var outputShutByUs = false
    /// We closed this side, because its partner ended or at shutdown.
    private var closedByUs = false
    /// The peer reset the connection (a read failed with ECONNRESET or similar).
    private var endedInReset = false
    /// We reset this side on purpose; its partner must be reset too, not closed cleanly.
    private var resetByUs = false
    /// What the partner asked of us before our channel was ready; acted on when it becomes active.
    private var deferredPartnerEnd: PartnerEnd?

    private enum PartnerEnd {
        case closed
        case reset
    }

    private init(side: Side, lingerTimeout: TimeAmount, recorder: SessionRecorder?) {
        self.side = side
        self.lingerTimeout = lingerTimeout
        self.recorder = recorder
    }

    /// Makes the two handlers of one session, already introduced to each other.
    ///
    /// - Parameters:
    ///   - lingerTimeout: How long queued bytes may take to drain to a side whose partner has gone, before that
    ///     side is reset anyway.
    ///   - recorder: Where to report the session's events, when recording.
    static func matchedPair(
        lingerTimeout: TimeAmount,
        recorder: SessionRecorder? = nil
    ) -> (client: RelayHandler, upstream: RelayHandler) {
        let client = RelayHandler(side: .client, lingerTimeout: lingerTimeout, recorder: recorder)
        let upstream = RelayHandler(side: .upstream, lingerTimeout: lingerTimeout, recorder: recorder)
        client.partner = upstream
        upstream.partner = client
        return (client, upstream)
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { actOnDeferredPartnerEnd() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        actOnDeferredPartnerEnd()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        recorder?.recordData(buffer, from: side.direction)
        partner?.partnerWrite(buffer)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            inputEnded = true
            recorder?.recordHalfClose(from: side.direction)
            partner?.partnerInputEnded()
        } else if let request = event as? ResetRequest {
            if request.interrupted { recorder?.markInterrupted() }
            resetByUs = true
            close(context: context, reset: true)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, Self.isReset(errno: error.errnoCode) {
            endedInReset = true
        }
        // NIO closes a channel after most I/O errors by itself; closing here covers the rest.
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        // NIO closes a channel after a failed write without an `errorCaught`, so a channel that went down
        // without us shutting or closing it went down abnormally, and counts as reset.
        let reset = endedInReset || resetByUs || !(outputShutByUs || closedByUs)
        if let recorder {
            if !closedByUs, !inputEnded, !reset {
                // NIO reports a FIN that arrives after our output was shut as a plain close, without
                // `inputClosed`: it is the peer's half-close all the same.
                recorder.recordHalfClose(from: side.direction)
            }
            recorder.recordEnd(
                of: side.direction,
                reset: endedInReset || !(outputShutByUs || closedByUs),
                byPeer: !closedByUs
            )
        }
        partner?.partnerEnded(reset: reset)
        partner = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        guard partner?.isWritable ?? true else {
            pendingRead = true
            return
        }
        if let recorder, !recorder.budget.hasRoom {
            pendingRead = true
            waitForTape(recorder.budget, context: context)
            return
        }
        context.read()
    }

    // MARK: Backpressure from the tape

    private func waitForTape(_ budget: RecordingBudget, context: ChannelHandlerContext) {
        guard !waitingForTape else { return }
        waitingForTape = true
        let loop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        budget.whenRoom {
            loop.execute {
                handler.value.waitingForTape = false
                handler.value.resumeRead()
            }
        }
    }

    private func resumeRead() {
        guard pendingRead, let context else { return }
        pendingRead = false
        // Through this handler's own `read(context:)`, which checks both partner and tape again: `context.read()`
        // would go past it, straight to the socket, with the tape still over its budget (or the partner full).
        read(context: context)
    }

    // MARK: Calls from the partner (same event loop)

    private var isWritable: Bool {
        context?.channel.isWritable ?? false
    }

    private func partnerWrite(_ buffer: ByteBuffer) {
        // nil promise: a failed write closes the channel, which channelInactive reports.
        context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private func partnerBecameWritable() {
        resumeRead()
    }

    /// The partner's peer shut down its write half: shut down ours once every byte before it is written.
    ///
    /// With writes still queued, shutting the output down at once would be wrong: on a channel whose input is
    /// already closed, NIO turns `close(mode: .output)` into a full close that drops them. An empty write
    /// completes only after every earlier write, so the shutdown waits for it. Nor may it happen before the
    /// channel is connected, as a shutdown would abort the connect while a write waits for it. With nothing
    /// queued on a connected channel, the shutdown goes at once.
    private func partnerInputEnded() {
        guard let context, !closedByUs else { return }
        if context.channel.isActive, !hasQueuedBytes(context) {
            outputShutByUs = true
            context.close(mode: .output, promise: nil)
            return
        }
        let flushed = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: flushed)
        flushed.futureResult.assumeIsolated().whenSuccess {
            self.outputShutByUs = true
            context.close(mode: .output, promise: nil)
        }
    }

    /// Whether writes are still queued on this side; when none are, an end can be passed on at once, without
    /// the empty write, promise and linger timer that waiting for them costs on every connection.
    private func hasQueuedBytes(_ context: ChannelHandlerContext) -> Bool {
        let queued = try? context.channel.syncOptions?.getOption(ChannelOptions.bufferedWritableBytes)
        return queued.map { $0 > 0 } ?? true
    }

    /// The partner's connection is gone. Forward the way it ended: a reset as a reset, an orderly close as an
    /// orderly close after our queued bytes are written.
    private func partnerEnded(reset: Bool) {
        partner = nil
        guard let context, context.channel.isActive else {
            deferredPartnerEnd = reset ? .reset : .closed
            return
        }
        closeAfterFlushing(context: context, reset: reset)
    }

    private func actOnDeferredPartnerEnd() {
        guard let end = deferredPartnerEnd, let context else { return }
        deferredPartnerEnd = nil
        closeAfterFlushing(context: context, reset: end == .reset)
    }

    private func closeAfterFlushing(context: ChannelHandlerContext, reset: Bool) {
        guard !closedByUs else { return }
        guard hasQueuedBytes(context) else {
            close(context: context, reset: reset)
            return
        }
        let flushed = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: flushed)
        // A peer that stopped reading must not hold the connection open for ever.
        let deadline = context.eventLoop.assumeIsolated().scheduleTask(in: lingerTimeout) {
            self.close(context: context, reset: true)
        }
        flushed.futureResult.assumeIsolated().whenComplete { _ in
            deadline.cancel()
            self.close(context: context, reset: reset)
        }
    }

    private func close(context: ChannelHandlerContext, reset: Bool) {
        guard context.channel.isActive, !closedByUs else { return }
        closedByUs = true
        if reset { Self.armReset(context.channel) }
        context.close(promise: nil)
    }

    /// Makes the next close send RST instead of FIN. Unix sockets have no reset; there it is a plain close.
    static func armReset(_ channel: any Channel) {
        // Completes synchronously when called on the channel's event loop, which every caller is.
        _ = (channel as? any SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0))
    }

    static func isReset(errno: CInt) -> Bool {
        errno == ECONNRESET || errno == EPIPE || errno == ETIMEDOUT || errno == ECONNABORTED
    }
}
