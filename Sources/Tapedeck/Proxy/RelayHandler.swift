import NIOCore
import NIOPosix

/// One half of a relay: sits in one channel's pipeline and hands everything it reads to its partner, the
/// handler in the other channel of the same session.
///
/// Both channels of a session live on the same event loop, so partners call each other directly. The handler
/// carries the three things a faithful relay needs beyond copying bytes:
/// - backpressure: a read is only passed on while the partner's channel is writable;
/// - half-close: end of input on one side becomes a write shutdown on the other, after its queued writes;
/// - reset: a connection reset on one side resets the other (`SO_LINGER` 0), rather than closing it cleanly.
final class RelayHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Which connection of the session this handler sits on.
    enum Side: Sendable {
        case client
        case upstream
    }

    let side: Side
    private let lingerTimeout: TimeAmount
    private var partner: RelayHandler?
    private var context: ChannelHandlerContext?
    /// A read was requested while the partner could not take more bytes; issued when it can.
    private var pendingRead = false
    /// This side's connection ended in a reset (ECONNRESET, EPIPE), so the partner must be reset too.
    private var endedInReset = false
    /// We shut this side's output down or closed it ourselves, so its end is orderly unless an error says
    /// otherwise. NIO closes a channel after a failed write without an `errorCaught`, so a channel that goes
    /// inactive without this flag went down abnormally and counts as reset.
    private var endedByUs = false
    /// What the partner asked of us before our channel was ready; acted on when it becomes active.
    private var deferredPartnerEnd: PartnerEnd?
    /// Set once this side started closing, so a second request does nothing.
    private var closing = false

    private enum PartnerEnd {
        case closed
        case reset
    }

    private init(side: Side, lingerTimeout: TimeAmount) {
        self.side = side
        self.lingerTimeout = lingerTimeout
    }

    /// Makes the two handlers of one session, already introduced to each other.
    ///
    /// - Parameter lingerTimeout: How long queued bytes may take to drain to a side whose partner has gone,
    ///   before that side is closed anyway.
    static func matchedPair(lingerTimeout: TimeAmount) -> (client: RelayHandler, upstream: RelayHandler) {
        let client = RelayHandler(side: .client, lingerTimeout: lingerTimeout)
        let upstream = RelayHandler(side: .upstream, lingerTimeout: lingerTimeout)
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
        partner?.partnerWrite(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            partner?.partnerInputEnded()
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
        partner?.partnerEnded(reset: endedInReset || !endedByUs)
        partner = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        if partner?.isWritable ?? true {
            context.read()
        } else {
            pendingRead = true
        }
    }

    // MARK: Calls from the partner (same event loop)

    private var isWritable: Bool {
        context?.channel.isWritable ?? false
    }

    private func partnerWrite(_ buffer: ByteBuffer) {
        // nil promise: a failed write surfaces through errorCaught and closes the channel.
        context?.write(wrapOutboundOut(buffer), promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private func partnerBecameWritable() {
        guard pendingRead, let context else { return }
        pendingRead = false
        context.read()
    }

    /// The partner's peer shut down its write half: shut down ours once every byte before it is written.
    ///
    /// Shutting the output down at once would be wrong twice over: on a channel whose input is already closed,
    /// NIO turns `close(mode: .output)` into a full close that drops queued writes. An empty write completes only
    /// after every earlier write, so the shutdown waits for it.
    private func partnerInputEnded() {
        guard let context, !closing else { return }
        let flushed = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: flushed)
        flushed.futureResult.assumeIsolated().whenSuccess {
            self.endedByUs = true
            context.close(mode: .output, promise: nil)
        }
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
        guard !closing else { return }
        closing = true
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
        guard context.channel.isActive else { return }
        endedByUs = true
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
